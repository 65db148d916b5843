/**
 * Schemas for data that crosses a boundary untrusted: the host↔webview messages (protocol.ts)
 * and a run's manifest.json (engine/run/manifest.ts). A schema is written once; its type comes
 * from it (`Infer<typeof S>`) and so does its guard (`is(S, x)`), so the two cannot drift apart.
 *
 * Why not a library (valibot was tried): a guard here allocates nothing while the value fits, so
 * checking a GPT-2-small table payload (37k neurons × a dozen columns) takes ~10 ms; valibot's
 * `is` built a dataset per value and took ~700 ms on the same payload, on every panel open.
 *
 * Checking stops at the first problem; `check` says where it is (`models[0].nLayers: expected
 * an integer ≥ 1`). Objects are checked, never copied: unknown fields are allowed and kept.
 * Pure: no imports, usable by every layer.
 */

/** Where a check failed and why (filled only when a check fails). */
export interface Issue {
  path: (string | number)[];
  message: string;
}

export interface Schema<T> {
  /** Whether `x` fits; when it does not and `issue` is given, fills it in. */
  check(x: unknown, issue?: Issue): boolean;
  /** Phantom: the type the schema describes. */
  readonly type?: T;
}

/** A schema whose key an object may leave out (`optional`). */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optional: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Flat<T> = { [K in keyof T]: T[K] } & {};
type Entries = Record<string, Schema<unknown>>;
type RequiredKeys<E> = { [K in keyof E]: E[K] extends OptionalSchema<unknown> ? never : K }[keyof E];
type OptionalKeys<E> = { [K in keyof E]: E[K] extends OptionalSchema<unknown> ? K : never }[keyof E];
export type ObjectOf<E extends Entries> = Flat<{ [K in RequiredKeys<E>]: Infer<E[K]> } & { [K in OptionalKeys<E>]?: Infer<E[K]> }>;

const bad = (issue: Issue | undefined, message: string): false => {
  if (issue) issue.message = message;
  return false;
};

const at = (issue: Issue | undefined, key: string | number): false => {
  issue?.path.unshift(key);
  return false;
};

/** Whether `x` fits `s` (a type guard). */
export const is = <T>(s: Schema<T>, x: unknown): x is T => s.check(x);

/** The first problem with `x`, as `path: message`, or undefined when it fits. */
export function problem(s: Schema<unknown>, x: unknown): string | undefined {
  const issue: Issue = { path: [], message: '' };
  if (s.check(x, issue)) return undefined;
  const path = issue.path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i ? `.${k}` : k)).join('');
  return path ? `${path}: ${issue.message}` : issue.message;
}

const schema = <T>(check: (x: unknown, issue?: Issue) => boolean): Schema<T> => ({ check });

// ---------------------------------------------------------------------------------------------
// Values

export const boolean = (): Schema<boolean> => schema((x, i) => typeof x === 'boolean' || bad(i, 'expected true or false'));

/** A string, at most `max` characters (UTF-16 units) and matching `pattern` when given. */
export function string(opts: { max?: number; pattern?: RegExp } = {}): Schema<string> {
  const { max, pattern } = opts;
  return schema(
    (x, i) =>
      (typeof x === 'string' || bad(i, 'expected a string')) &&
      (max === undefined || (x as string).length <= max || bad(i, `expected at most ${max} characters`)) &&
      (pattern === undefined || pattern.test(x as string) || bad(i, `expected text matching ${pattern}`)),
  );
}

/** A finite number (JSON has no NaN or ±Infinity), at least `min` when given. */
export function number(opts: { min?: number } = {}): Schema<number> {
  const { min } = opts;
  return schema(
    (x, i) =>
      (typeof x === 'number' && Number.isFinite(x)) || bad(i, 'expected a finite number')
        ? min === undefined || (x as number) >= min || bad(i, `expected a number ≥ ${min}`)
        : false,
  );
}

/** A safe integer, at least `min` when given. */
export function integer(opts: { min?: number } = {}): Schema<number> {
  const { min } = opts;
  return schema((x, i) =>
    Number.isSafeInteger(x) || bad(i, min === undefined ? 'expected an integer' : `expected an integer ≥ ${min}`)
      ? min === undefined || (x as number) >= min || bad(i, `expected an integer ≥ ${min}`)
      : false,
  );
}

export const literal = <const T extends string | number | boolean>(value: T): Schema<T> & { readonly value: T } => ({
  value,
  check: (x, i) => x === value || bad(i, `expected ${JSON.stringify(value)}`),
});

/** One of `values`. */
export function picklist<const T extends string>(values: readonly T[]): Schema<T> {
  const set = new Set<unknown>(values);
  return schema((x, i) => set.has(x) || bad(i, `expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}`));
}

/** Anything (the value is not read). */
export const unknown = (): Schema<unknown> => schema(() => true);

// ---------------------------------------------------------------------------------------------
// Combinations

export const nullable = <T>(s: Schema<T>): Schema<T | null> => schema((x, i) => x === null || s.check(x, i));

/** A key an object may leave out (or set to undefined). */
export const optional = <T>(s: Schema<T>): OptionalSchema<T> => ({ optional: true, check: (x, i) => x === undefined || s.check(x, i) });

/** An array of items fitting `item`. */
export function array<T>(item: Schema<T>): Schema<T[]> {
  return schema((x, i) => {
    if (!Array.isArray(x)) return bad(i, 'expected an array');
    for (let k = 0; k < x.length; k++) if (!item.check(x[k], i)) return at(i, k);
    return true;
  });
}

/** Values of string keys fitting `value`. */
export function record<T>(value: Schema<T>): Schema<Record<string, T>> {
  return schema((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad(i, 'expected an object');
    for (const [k, v] of Object.entries(x)) if (!value.check(v, i)) return at(i, k);
    return true;
  });
}

/** An object with these entries (an entry made `optional` may be missing); other keys are allowed. */
export function object<E extends Entries>(entries: E): Schema<ObjectOf<E>> & { readonly entries: E } {
  const list = Object.entries(entries);
  return {
    entries,
    check(x, i) {
      if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad(i, 'expected an object');
      const o = x as Record<string, unknown>;
      for (const [k, s] of list) if (!s.check(o[k], i)) return at(i, k);
      return true;
    },
  };
}

/** `s`, and `ok` of the value (for checks across fields: parallel arrays of one length, …). */
export function refine<S extends Schema<unknown>>(s: S, ok: (x: Infer<S>) => boolean, message: string): S {
  return { ...s, check: (x: unknown, i?: Issue) => s.check(x, i) && (ok(x as Infer<S>) || bad(i, message)) };
}

/** The option whose `key` (a `literal`) is the value's `key` (messages, payloads). */
export function variant<K extends string, O extends (Schema<Record<K, string>> & { readonly entries: Record<K, { readonly value: string }> })[]>(
  key: K,
  options: O,
): Schema<Infer<O[number]>> {
  const by = new Map<unknown, Schema<unknown>>(options.map((o) => [o.entries[key].value, o]));
  const expected = `expected ${key} to be one of ${[...by.keys()].map((k) => JSON.stringify(k)).join(', ')}`;
  return schema((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad(i, 'expected an object');
    const o = by.get((x as Record<string, unknown>)[key]);
    if (!o) return bad(i, expected) || at(i, key);
    return o.check(x, i);
  });
}

/** Either schema. */
export const union = <A, B>(a: Schema<A>, b: Schema<B>): Schema<A | B> => schema((x, i) => a.check(x) || b.check(x, i));
