/**
 * The neuron table: every reference neuron, filtered (universal only by default, layer, family,
 * role, excess range), sorted by any column (families in the method's order, roles by primary role), shown a page at a time so that GPT2-small's 36,864 rows stay
 * responsive (filter + sort over all rows takes milliseconds; only PAGE_SIZE rows reach the DOM).
 * Clicking a row (or Enter on it) opens the neuron's page. Filters and page persist across reloads.
 */
import { ROLES, TABLE_COLUMNS, type Role, type TableData, type TableSort, type TableUiState } from '../src/protocol';
import { compareFamilies, describeLabel, familyName, ROLE_TITLES } from '../src/view/familyText';
import { runHeader, type ViewContext } from './common';
import { el, fmt, neuronName } from './dom';
import { button, checkbox, dataGrid, dropdown, textField, type GridColumn } from './ui';

export const PAGE_SIZE = 100;

export const DEFAULT_TABLE_STATE: TableUiState = {
  universalOnly: true,
  layer: null,
  family: null,
  role: null,
  minExcess: null,
  maxExcess: null,
  sort: 'excess_corr',
  descending: true,
  page: 0,
};

const parseBound = (s: string): number | null | undefined => {
  const t = s.trim();
  if (t === '') return null;
  const x = Number(t);
  return Number.isFinite(x) ? x : undefined;
};

/** Row indices passing the filters, sorted (missing values last, ties by layer then neuron). */
export function filterAndSort(d: TableData, st: TableUiState): number[] {
  const c = d.columns;
  const ex = c.values.excess_corr;
  const rows: number[] = [];
  for (let i = 0; i < c.layer.length; i++) {
    const e = ex[i];
    if (st.universalOnly && !c.universal[i]) continue;
    if (st.layer !== null && c.layer[i] !== st.layer) continue;
    if (st.family !== null && (c.family === null || c.family[i] !== st.family)) continue;
    if (st.role != null && !c.roles?.[i]?.includes(st.role)) continue;
    if (st.minExcess !== null && !(e !== null && e !== undefined && e >= st.minExcess)) continue;
    if (st.maxExcess !== null && !(e !== null && e !== undefined && e <= st.maxExcess)) continue;
    rows.push(i);
  }
  const byPos = (a: number, b: number) => c.layer[a]! - c.layer[b]! || c.neuron[a]! - c.neuron[b]!;
  if (st.sort === 'layer' || st.sort === 'neuron') {
    rows.sort(st.sort === 'layer' ? byPos : (a, b) => c.neuron[a]! - c.neuron[b]! || c.layer[a]! - c.layer[b]!);
    if (st.descending) rows.reverse();
  } else if (st.sort === 'family' || st.sort === 'role') {
    // Categories in display order (method order for families, ROLES order for primary roles);
    // none last whichever the direction, ties by position.
    const fam = c.family;
    const roles = c.roles;
    const sign = st.descending ? -1 : 1;
    const cmp =
      st.sort === 'family'
        ? (a: number, b: number) => compareFamilies(fam?.[a], fam?.[b])
        : (a: number, b: number) => ROLES.indexOf(roles![a]![0]!) - ROLES.indexOf(roles![b]![0]!);
    const has = st.sort === 'family' ? (i: number) => !!fam?.[i] : (i: number) => !!roles?.[i]?.length;
    rows.sort((a, b) => {
      const x = has(a);
      const y = has(b);
      if (!x) return !y ? byPos(a, b) : 1;
      if (!y) return -1;
      return sign * cmp(a, b) || byPos(a, b);
    });
  } else {
    const v = st.sort === 'family_vr' ? (c.familyVr ?? []) : c.values[st.sort];
    const sign = st.descending ? -1 : 1;
    rows.sort((a, b) => {
      const x = v[a];
      const y = v[b];
      if (x === null || x === undefined) return y === null || y === undefined ? byPos(a, b) : 1;
      if (y === null || y === undefined) return -1;
      return x !== y ? sign * (x - y) : byPos(a, b);
    });
  }
  return rows;
}

export function renderTable(root: HTMLElement, d: TableData, ctx: ViewContext, initial: TableUiState | undefined, save: (s: TableUiState) => void): void {
  const c = d.columns;
  const st: TableUiState = { ...DEFAULT_TABLE_STATE, ...(initial ?? {}) };
  if (st.layer !== null && st.layer >= d.run.nLayers) st.layer = null;
  if (st.family !== null && (c.family === null || !c.family.includes(st.family))) st.family = null;
  if (st.role != null && c.roles === null) st.role = null;
  if ((st.sort === 'family' && !c.family) || (st.sort === 'role' && !c.roles) || (st.sort === 'family_vr' && !c.familyVr)) st.sort = 'excess_corr';

  // Wide enough for the header and its sort arrow (the grid scrolls sideways in a narrow panel).
  const w = (title: string) => Math.max(72, Math.round(7.5 * title.length) + 40);
  // A column and how a row shows in it. Family columns (when the run has them) sit right after
  // excess_corr: what a universal neuron does is read next to how universal it is.
  const numeric = (k: (typeof TABLE_COLUMNS)[number]) => ({ key: k, title: k, minWidth: w(k), numeric: true, sortable: true, cell: (i: number) => fmt(c.values[k][i]) });
  const spec: (GridColumn & { cell: (i: number) => string })[] = [
    { key: 'neuron_name', title: 'Neuron', minWidth: 96, cell: (i) => neuronName(c.layer[i]!, c.neuron[i]!) },
    { key: 'layer', title: 'Layer', minWidth: w('Layer'), numeric: true, sortable: true, cell: (i) => String(c.layer[i]) },
    numeric('excess_corr'),
    ...(c.family ? [{ key: 'family', title: 'family', minWidth: 130, sortable: true, cell: (i: number) => (c.family![i] ? familyName(c.family![i]!) : '') }] : []),
    ...(c.familyLabel ? [{ key: 'family_label', title: 'explained by', minWidth: 200, cell: (i: number) => (c.familyLabel![i] ? describeLabel(c.familyLabel![i]!) : '') }] : []),
    ...(c.familyVr ? [{ key: 'family_vr', title: 'family_vr', minWidth: w('family_vr'), numeric: true, sortable: true, cell: (i: number) => fmt(c.familyVr![i], 3) }] : []),
    ...(c.roles ? [{ key: 'role', title: 'role', minWidth: 130, sortable: true, cell: (i: number) => c.roles![i]!.map((r) => ROLE_TITLES[r]).join(', ') }] : []),
    ...TABLE_COLUMNS.filter((k) => k !== 'excess_corr').map(numeric),
  ];
  const columns: GridColumn[] = spec.map(({ cell: _cell, ...col }) => col);
  let pageRows: number[] = [];
  const grid = dataGrid({
    label: 'Neurons of the reference model',
    columns,
    rowTitle: 'Open this neuron’s page',
    onSort: (key) => {
      const k = key as TableSort;
      if (st.sort === k) st.descending = !st.descending;
      else {
        st.sort = k;
        // Numbers start with the largest; positions and categories in their natural order.
        st.descending = k !== 'layer' && k !== 'family' && k !== 'role';
      }
      st.page = 0;
      update();
    },
    onActivate: (r) => {
      const i = pageRows[r];
      if (i !== undefined) ctx.openNeuron({ layer: c.layer[i]!, neuron: c.neuron[i]! });
    },
  });

  const status = el('p', { class: 'status', attrs: { 'aria-live': 'polite', role: 'status' } });
  const prev = button('Previous', () => go(-1), { ariaLabel: 'Previous page' });
  const next = button('Next', () => go(1), { ariaLabel: 'Next page' });
  const pageLabel = el('span', { class: 'page-label' });

  const bound = (x: string) => parseBound(x) === undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  };
  ctx.onDispose(() => clearTimeout(timer));

  const families = c.family ? [...new Set(c.family.filter((f): f is string => !!f))].sort(compareFamilies) : [];
  const roles = c.roles ? ROLES.filter((r) => c.roles!.some((x) => x.includes(r))) : [];
  const filters = el(
    'div',
    { class: 'filters', attrs: { role: 'group', 'aria-label': 'Filters' } },
    checkbox(`Universal only (excess_corr > ${d.run.threshold})`, st.universalOnly, (v) => {
      st.universalOnly = v;
      st.page = 0;
      update();
    }),
    dropdown(
      'Layer',
      [{ value: '', label: 'all layers' }, ...Array.from({ length: d.run.nLayers }, (_, l) => ({ value: String(l), label: `L${l}` }))],
      st.layer === null ? '' : String(st.layer),
      (v) => {
        st.layer = v === '' ? null : Number(v);
        st.page = 0;
        update();
      },
    ),
    c.family
      ? dropdown('Family', [{ value: '', label: 'all families' }, ...families.map((f) => ({ value: f, label: familyName(f) }))], st.family ?? '', (v) => {
          st.family = v === '' ? null : v;
          st.page = 0;
          update();
        })
      : el('div', { class: 'ui-field' }, el('span', { class: 'label', text: 'Family' }), el('span', { class: 'muted', text: 'not computed yet' })),
    c.roles
      ? dropdown('Role', [{ value: '', label: 'any role' }, ...roles.map((r) => ({ value: r, label: ROLE_TITLES[r] }))], st.role ?? '', (v) => {
          st.role = v === '' ? null : (v as Role);
          st.page = 0;
          update();
        })
      : null,
    textField(
      'excess_corr ≥',
      st.minExcess === null ? '' : String(st.minExcess),
      (v) => {
        const b = parseBound(v);
        if (b === undefined) return;
        st.minExcess = b;
        st.page = 0;
        later();
      },
      { placeholder: 'min', size: 6, invalid: bound },
    ),
    textField(
      'excess_corr ≤',
      st.maxExcess === null ? '' : String(st.maxExcess),
      (v) => {
        const b = parseBound(v);
        if (b === undefined) return;
        st.maxExcess = b;
        st.page = 0;
        later();
      },
      { placeholder: 'max', size: 6, invalid: bound },
    ),
  );

  root.append(
    el('h1', { text: 'Universal neurons: table' }),
    runHeader(d.run),
    el('p', {}, button('Overview', () => ctx.openView('overview'))),
    filters,
    status,
    el('div', { class: 'grid-wrap' }, grid.element),
    el('div', { class: 'pager', attrs: { role: 'group', 'aria-label': 'Pages' } }, prev, pageLabel, next),
  );

  let matched: number[] = [];
  function go(delta: number): void {
    st.page += delta;
    update(false);
  }

  function update(refilter = true): void {
    if (refilter) matched = filterAndSort(d, st);
    const pages = Math.max(1, Math.ceil(matched.length / PAGE_SIZE));
    st.page = Math.max(0, Math.min(st.page, pages - 1));
    const from = st.page * PAGE_SIZE;
    pageRows = matched.slice(from, from + PAGE_SIZE);
    grid.setRows(pageRows.map((i) => spec.map((col) => col.cell(i))));
    grid.setSort(st.sort, st.descending);
    const n = matched.length;
    status.textContent =
      n === 0
        ? st.universalOnly
          ? `No universal neuron matches (threshold ${d.run.threshold}). Untick “Universal only” to see every neuron.`
          : 'No neuron matches these filters.'
        : `${n.toLocaleString('en-US')} of ${c.layer.length.toLocaleString('en-US')} neurons match · rows ${(from + 1).toLocaleString('en-US')}–${(from + pageRows.length).toLocaleString('en-US')}`;
    pageLabel.textContent = `page ${st.page + 1} of ${pages}`;
    prev.toggleAttribute('disabled', st.page === 0);
    next.toggleAttribute('disabled', st.page >= pages - 1);
    save({ ...st });
  }
  update();
}
