// The schema-to-guard module (src/schema.ts) the protocol and the manifest reader are written in:
// a schema gives its type and its guard; a failed check names the first bad field.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  array,
  boolean,
  integer,
  is,
  literal,
  nullable,
  number,
  object,
  optional,
  picklist,
  problem,
  record,
  refine,
  string,
  union,
  variant,
  type Infer,
} from '../../src/schema';

const Point = refine(object({ x: integer({ min: 0 }), y: nullable(number()), tag: optional(string({ max: 3 })) }), (p) => p.y === null || p.y >= p.x, 'y below x');
type Point = Infer<typeof Point>;

test('values: finite numbers, safe integers, bounded and patterned strings, literals, picklists', () => {
  assert.ok(is(number(), 1.5) && !is(number(), Number.NaN) && !is(number(), Infinity) && !is(number(), '1'));
  assert.ok(is(integer(), -3) && !is(integer(), 1.5) && !is(integer(), 2 ** 60));
  assert.equal(problem(integer({ min: 1 }), 0), 'expected an integer ≥ 1');
  assert.ok(is(string({ max: 2 }), 'ab') && !is(string({ max: 2 }), 'abc'));
  assert.ok(is(string({ pattern: /^L\d+$/ }), 'L3') && !is(string({ pattern: /^L\d+$/ }), 'x'));
  assert.ok(is(literal('a'), 'a') && !is(literal('a'), 'b'));
  assert.ok(is(picklist(['a', 'b']), 'b') && !is(picklist(['a', 'b']), 'c'));
  assert.ok(is(boolean(), false) && !is(boolean(), 0));
  assert.ok(is(union(literal(1), literal('x')), 'x') && !is(union(literal(1), literal('x')), 2));
});

test('objects: required and optional keys, unknown keys kept, refinements, the first problem with its path', () => {
  const ok: Point = { x: 1, y: 2 };
  assert.ok(is(Point, ok));
  assert.ok(is(Point, { x: 1, y: null, tag: 'ab', extra: [1] }), 'unknown keys are allowed');
  assert.ok(!is(Point, { y: 2 }), 'a required key is missing');
  assert.equal(problem(Point, { x: 1, y: 0 }), 'y below x');
  assert.equal(problem(Point, { x: 1, y: 2, tag: 'abcd' }), 'tag: expected at most 3 characters');
  const Doc = object({ points: array(Point), meta: record(boolean()) });
  assert.equal(problem(Doc, { points: [ok, { x: -1, y: 1 }], meta: {} }), 'points[1].x: expected an integer ≥ 0');
  assert.equal(problem(Doc, { points: [], meta: { a: true, b: 1 } }), 'meta.b: expected true or false');
  assert.equal(problem(Doc, []), 'expected an object');
  assert.equal(problem(Doc, { points: [], meta: {} }), undefined);
});

test('variants: the tag picks the schema; an unknown tag is named', () => {
  const Msg = variant('type', [object({ type: literal('a'), n: integer() }), object({ type: literal('b'), s: string() })]);
  assert.ok(is(Msg, { type: 'a', n: 1 }) && is(Msg, { type: 'b', s: '' }));
  assert.ok(!is(Msg, { type: 'a', s: '' }));
  assert.equal(problem(Msg, { type: 'c' }), 'type: expected type to be one of "a", "b"');
  assert.equal(problem(Msg, { type: 'b', s: 1 }), 's: expected a string');
});
