import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeMessage,
  isFromWebview,
  isNeuronData,
  isOverviewData,
  isPanelState,
  isPromptData,
  isTableData,
  isTableUiState,
  isToWebview,
  isViewPayload,
  MAX_TEXT,
  PROTOCOL_VERSION,
  TABLE_COLUMNS,
  VIEW_TYPES,
  type FromWebview,
  type NeuronData,
  type OverviewData,
  type PanelState,
  type PromptData,
  type RunInfo,
  type TableData,
  type ToWebview,
} from '../../src/protocol';

const run: RunInfo = {
  runDir: '/w/.universal-neurons/runs/r1',
  id: 'r1',
  status: 'complete',
  models: ['a', 'b', 'c'],
  nLayers: 2,
  dMlp: 2,
  threshold: 0.5,
  tokens: 1000,
  created: '2026-01-01T00:00:00Z',
};

const col = (xs: (number | null)[]) => xs;
const table: TableData = {
  run,
  columns: {
    layer: [0, 0, 1, 1],
    neuron: [0, 1, 0, 1],
    universal: [false, false, true, false],
    values: Object.fromEntries(TABLE_COLUMNS.map((c) => [c, col([0.1, null, 0.7, 0.2])])) as TableData['columns']['values'],
    family: null,
    familyLabel: null,
    familyVr: null,
    roles: null,
  },
};

const overview: OverviewData = {
  run,
  totals: { neurons: 4, universal: 1, percent: 25 },
  layers: [
    { layer: 0, neurons: 2, universal: 0, percent: 0, medianExcess: null },
    { layer: 1, neurons: 2, universal: 1, percent: 50, medianExcess: 0.7 },
  ],
  excessHistogram: { edges: [0, 0.5, 1], counts: [3, 1] },
  scatter: { layer: [0, 0, 1, 1], neuron: [0, 1, 0, 1], meanCorr: [0.2, null, 0.9, 0.3], meanBaseline: [0.1, 0.1, 0.2, 0.1], universal: [false, false, true, false] },
  families: null,
  familyLayers: null,
  roles: null,
  attention: null,
  properties: {
    stats: [{ stat: 'kurt', universal: { p10: 60, p25: 70, p50: 80, p75: 90, p90: 95 }, rest: { p10: 5, p25: 25, p50: 50, p75: 75, p90: 95 }, nUniversal: 1, nRest: 3, medianUniversal: 9.5, medianRest: null }],
    missing: ['vocab_kurt'],
  },
  basis: [{ layer: 0, baseline: { p10: 0.1, p25: 0.1, p50: 0.1, p75: 0.1, p90: 0.1 }, corr: { p10: null, p25: null, p50: 0.2, p75: null, p90: null }, pcaTop5: null, privileged: true, reading: 'neurons here are more meaningful than random directions' }],
};

/** The same table as a run with families and roles writes it. */
const familyTable: TableData = {
  ...table,
  columns: {
    ...table.columns,
    family: ['unigram', 'unexplained', 'previous-token', null],
    familyLabel: ['unigram:the', 'feature:numeric', 'prev:alphabet:t', null],
    familyVr: [0.7, 0.1, 0.5, null],
    roles: [[], ['prediction'], ['suppression', 'partition'], []],
  },
};

const familyOverview: OverviewData = {
  ...overview,
  families: [{ family: 'unigram', neurons: 3, universal: 1 }],
  familyLayers: [{ family: 'unigram', all: [2, 1], universal: [0, 1] }],
  roles: [{ role: 'prediction', neurons: 1, universal: 0, byLayer: [0, 1] }],
  attention: [{ layer: 0, neuron: 1, head: 'L1.H0', score: 4.2, raw: 0.3 }],
};

const neuron: NeuronData = {
  run,
  layer: 1,
  neuron: 0,
  universal: true,
  family: null,
  stats: [{ key: 'excess_corr', group: 'universality', value: 0.7, percentile: 75 }],
  histogram: { edges: [-1, 0, 1], counts: [5, 2], under: 0, over: 1, min: -0.9, max: 1.2 },
  examples: [{ value: 3, row: 12, maxIndex: 1, tokens: [{ id: 464, text: 'The', act: 0.1 }, { id: 3797, text: ' cat', act: 3 }] }],
  vocab: { top: [{ id: 1, text: 'x', value: 0.3 }], bottom: [] },
  partners: [{ model: 'b', layer: 1, neuron: 1, corr: 0.8, baseline: 0.2, bestReference: { layer: 1, neuron: 0, corr: 0.8 } }],
  notes: [],
};

const familyNeuron: NeuronData = {
  ...neuron,
  family: 'unigram',
  explanation: { label: 'unigram:the', vr: 0.62, positionMi: 0.001 },
  roles: ['entropy', 'attention-deactivation'],
  attention: [{ head: 'L1.H0', score: 4.2, raw: null }],
  entropy: {
    candidate: true,
    baseline: { lnScale: 1, entropy: 2.5, loss: 3.1 },
    points: [
      { value: -0.17, lnScale: 1.02, entropy: 2.4, loss: 3.1, dLoss: 0, dEntropy: -0.1 },
      { value: 6, lnScale: 0.3, entropy: null, loss: 3.4, dLoss: 0.3, dEntropy: null },
    ],
  },
  examples: [{ ...neuron.examples[0]!, carriesLabel: true }],
};

const prompt: PromptData = {
  document: 'file:///w/prompt.txt',
  title: 'prompt.txt',
  neuronLabel: 'L1.N0',
  tokens: [
    { text: '<|endoftext|>', start: 0, end: 0, id: 50256, value: null },
    { text: 'Hi', start: 0, end: 2, id: 17250, value: 1.5 },
  ],
};

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
/** `x` with `path` set to `v` (deep copy). */
function withField(x: unknown, path: (string | number)[], v: unknown): unknown {
  const c = clone(x) as Record<string | number, unknown>;
  let o = c;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  if (v === undefined) delete o[path[path.length - 1]!];
  else o[path[path.length - 1]!] = v;
  return c;
}

const junk: unknown[] = [undefined, null, 0, 'ready', [], [{ type: 'ready' }], true, () => 1];

test('view types are distinct and namespaced', () => {
  const v = Object.values(VIEW_TYPES);
  assert.equal(new Set(v).size, 4);
  for (const t of v) assert.match(t, /^universalNeurons\.[a-z]+$/);
});

test('isFromWebview accepts every good webview message', () => {
  const good: FromWebview[] = [
    { type: 'ready', protocolVersion: PROTOCOL_VERSION, view: 'overview' },
    { type: 'ready', protocolVersion: 1, view: 'prompt' },
    { type: 'openNeuron', layer: 0, neuron: 0 },
    { type: 'openNeuron', layer: 11, neuron: 3071 },
    { type: 'openView', view: 'table' },
    { type: 'openView', view: 'overview' },
    { type: 'revealRange', start: 0, end: 0 },
    { type: 'revealRange', start: 3, end: 10 },
    { type: 'log', level: 'error', message: 'boom' },
  ];
  for (const m of good) assert.ok(isFromWebview(m), JSON.stringify(m));
  // Extra fields are tolerated (ignored), like any JSON reader.
  assert.ok(isFromWebview({ type: 'openNeuron', layer: 1, neuron: 2, extra: true }));
});

test('isFromWebview rejects wrong shapes', () => {
  const bad: unknown[] = [
    ...junk,
    {},
    { type: 'nope' },
    { type: 'init', protocolVersion: 2 },
    { type: 'ready' },
    { type: 'ready', protocolVersion: '2', view: 'overview' },
    { type: 'ready', protocolVersion: 2.5, view: 'overview' },
    { type: 'ready', protocolVersion: 2, view: 'settings' },
    { type: 'openNeuron', layer: -1, neuron: 0 },
    { type: 'openNeuron', layer: 1.5, neuron: 0 },
    { type: 'openNeuron', layer: '1', neuron: 0 },
    { type: 'openNeuron', layer: 1 },
    { type: 'openNeuron', layer: Number.NaN, neuron: 0 },
    { type: 'openNeuron', layer: Infinity, neuron: 0 },
    { type: 'openNeuron', layer: 2 ** 60, neuron: 0 },
    { type: 'openView', view: 'neuron' },
    { type: 'openView' },
    { type: 'revealRange', start: 5, end: 2 },
    { type: 'revealRange', start: -1, end: 2 },
    { type: 'revealRange', start: 0 },
    { type: 'log', level: 'debug', message: 'x' },
    { type: 'log', level: 'info', message: 42 },
    { type: 'log', level: 'info', message: 'x'.repeat(MAX_TEXT + 1) },
    { type: ['ready'], protocolVersion: 2, view: 'overview' },
  ];
  for (const m of bad) assert.equal(isFromWebview(m), false, JSON.stringify(m) ?? String(m));
});

test('isToWebview accepts init for every view and error', () => {
  const good: ToWebview[] = [
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'overview', data: overview } },
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'table', data: table } },
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'neuron', data: neuron } },
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'prompt', data: prompt } },
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'overview', data: familyOverview } },
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'table', data: familyTable } },
    { type: 'init', protocolVersion: PROTOCOL_VERSION, payload: { view: 'neuron', data: familyNeuron } },
    { type: 'error', message: 'the run is running' },
  ];
  // After a JSON round trip, as postMessage delivers them.
  for (const m of good) assert.ok(isToWebview(clone(m)), JSON.stringify(m).slice(0, 80));
  // Optional parts.
  assert.ok(isNeuronData(withField(neuron, ['family'], undefined)));
  assert.ok(isNeuronData({ ...neuron, histogram: null, vocab: null, partners: [], examples: [] }));
  assert.ok(isOverviewData({ ...overview, families: [{ family: 'unigram', neurons: 3, universal: 1 }] }));
  // Properties and basis: a quantile that is not a number, or a reading that is not text, is refused.
  assert.ok(!isOverviewData(withField(overview, ['properties', 'stats', 0, 'universal', 'p50'], '80')));
  assert.ok(!isOverviewData(withField(overview, ['basis', 0, 'reading'], 3)));
  assert.ok(!isOverviewData({ ...overview, basis: undefined }));
  assert.ok(isTableData(withField(table, ['columns', 'family'], ['unigram', null, null, 'position'])));
  assert.ok(isNeuronData({ ...neuron, examples: [{ value: 0, row: 0, maxIndex: 0, tokens: [] }] }));
  // Old runs: no family parts at all; a neuron with no roles.
  for (const k of ['explanation', 'roles', 'attention', 'entropy']) assert.ok(isNeuronData(withField(familyNeuron, [k], undefined)), k);
  assert.ok(isNeuronData({ ...familyNeuron, roles: [], explanation: { label: null, vr: null, positionMi: null } }));
  assert.ok(isNeuronData(withField(familyNeuron, ['examples', 0, 'carriesLabel'], undefined)));
});

test('family and role fields: malformed values are rejected', () => {
  const init = (payload: unknown) => ({ type: 'init', protocolVersion: PROTOCOL_VERSION, payload });
  const nd = (path: (string | number)[], v: unknown) => init({ view: 'neuron', data: withField(familyNeuron, path, v) });
  const tb = (path: (string | number)[], v: unknown) => init({ view: 'table', data: withField(familyTable, path, v) });
  const ov = (path: (string | number)[], v: unknown) => init({ view: 'overview', data: withField(familyOverview, path, v) });
  const bad: unknown[] = [
    // Neuron page.
    nd(['explanation'], 'unigram:the'),
    nd(['explanation', 'label'], 3),
    nd(['explanation', 'label'], 'x'.repeat(201)),
    nd(['explanation', 'vr'], '0.6'),
    nd(['explanation', 'vr'], undefined),
    nd(['explanation', 'positionMi'], undefined),
    nd(['roles'], 'entropy'),
    nd(['roles'], ['entropy', 'entropy']),
    nd(['roles'], ['astrology']),
    nd(['roles'], [null]),
    nd(['attention'], [{ head: 'head 1', score: 3, raw: null }]),
    nd(['attention'], [{ head: 'L1.H0', score: '3', raw: null }]),
    nd(['attention'], [{ head: 'L1.H0', score: 3 }]),
    nd(['attention'], { head: 'L1.H0', score: 3, raw: null }),
    nd(['entropy'], null),
    nd(['entropy', 'baseline'], undefined),
    nd(['entropy', 'candidate'], 'yes'),
    nd(['entropy', 'baseline', 'loss'], 'high'),
    nd(['entropy', 'points'], {}),
    nd(['entropy', 'points', 0, 'value'], null),
    nd(['entropy', 'points', 1, 'dLoss'], undefined),
    nd(['examples', 0, 'carriesLabel'], 1),
    nd(['examples', 0, 'carriesLabel'], null),
    // Table.
    tb(['columns', 'familyLabel'], ['unigram:the']),
    tb(['columns', 'familyLabel'], [1, null, null, null]),
    tb(['columns', 'familyLabel'], undefined),
    tb(['columns', 'familyVr'], [0.1, 0.2, 'x', null]),
    tb(['columns', 'familyVr'], [0.1]),
    tb(['columns', 'roles'], [[], [], [], 'prediction']),
    tb(['columns', 'roles'], [[], [], [], ['seer']]),
    tb(['columns', 'roles'], [[], []]),
    tb(['columns', 'roles'], undefined),
    // Overview.
    ov(['familyLayers'], [{ family: 'unigram', all: [1, 2], universal: [1] }]),
    ov(['familyLayers'], [{ family: 3, all: [1], universal: [1] }]),
    ov(['familyLayers'], undefined),
    ov(['roles'], [{ role: 'oracle', neurons: 1, universal: 0, byLayer: [1] }]),
    ov(['roles'], [{ role: 'prediction', neurons: -1, universal: 0, byLayer: [1] }]),
    ov(['roles'], [{ role: 'prediction', neurons: 1, universal: 0 }]),
    ov(['attention'], [{ layer: 0, neuron: 1, head: 'L1', score: 4, raw: 0 }]),
    ov(['attention'], [{ neuron: 1, head: 'L1.H0', score: 4, raw: 0 }]),
    ov(['attention'], undefined),
  ];
  for (const m of bad) assert.equal(isToWebview(m), false, (JSON.stringify(m) ?? String(m)).slice(0, 300));
  assert.equal(isNeuronData({ ...familyNeuron, explanation: { label: 'x', vr: Number.NaN, positionMi: null } }), false);
});

test('isToWebview rejects wrong shapes', () => {
  const init = (payload: unknown) => ({ type: 'init', protocolVersion: PROTOCOL_VERSION, payload });
  const bad: unknown[] = [
    ...junk,
    { type: 'ready', protocolVersion: 2, view: 'overview' },
    { type: 'error' },
    { type: 'error', message: 1 },
    { type: 'init', payload: { view: 'table', data: table } },
    init(undefined),
    init({ view: 'table' }),
    init({ view: 'overview', data: table }), // view and data disagree
    init({ view: 'unknown', data: table }),
    // Table: ragged columns, missing column, non-numeric, wrong family length.
    init({ view: 'table', data: withField(table, ['columns', 'neuron'], [0, 1, 0]) }),
    init({ view: 'table', data: withField(table, ['columns', 'values', 'excess_corr'], undefined) }),
    init({ view: 'table', data: withField(table, ['columns', 'values', 'kurt'], [1, 2, 'x', 4]) }),
    init({ view: 'table', data: withField(table, ['columns', 'family'], ['a']) }),
    init({ view: 'table', data: withField(table, ['columns', 'universal'], [true, false, 1, false]) }),
    init({ view: 'table', data: withField(table, ['columns', 'universal'], undefined) }),
    init({ view: 'table', data: withField(table, ['columns', 'layer'], [0, 0, -1, 1]) }),
    init({ view: 'table', data: withField(table, ['run', 'nLayers'], '2') }),
    init({ view: 'table', data: withField(table, ['run', 'models'], ['a', 2]) }),
    // Overview.
    init({ view: 'overview', data: withField(overview, ['excessHistogram', 'edges'], [0, 1]) }),
    init({ view: 'overview', data: withField(overview, ['scatter', 'universal'], [true]) }),
    init({ view: 'overview', data: withField(overview, ['scatter', 'layer'], [0, 0, 1]) }),
    init({ view: 'overview', data: withField(overview, ['layers', 0, 'percent'], null) }),
    init({ view: 'overview', data: withField(overview, ['families'], [{ family: 'x' }]) }),
    init({ view: 'overview', data: withField(overview, ['totals'], undefined) }),
    // Neuron.
    init({ view: 'neuron', data: withField(neuron, ['stats', 0, 'group'], 'misc') }),
    init({ view: 'neuron', data: withField(neuron, ['examples', 0, 'maxIndex'], 2) }),
    init({ view: 'neuron', data: withField(neuron, ['examples', 0, 'tokens', 0, 'text'], 3) }),
    init({ view: 'neuron', data: withField(neuron, ['partners', 0, 'bestReference'], { layer: 1 }) }),
    init({ view: 'neuron', data: withField(neuron, ['histogram', 'under'], -1) }),
    init({ view: 'neuron', data: withField(neuron, ['vocab'], { top: [] }) }),
    init({ view: 'neuron', data: withField(neuron, ['notes'], [1]) }),
    init({ view: 'neuron', data: withField(neuron, ['family'], 7) }),
    init({ view: 'neuron', data: withField(neuron, ['universal'], 'yes') }),
    // Prompt.
    init({ view: 'prompt', data: withField(prompt, ['tokens', 1, 'end'], -1) }),
    init({ view: 'prompt', data: withField(prompt, ['tokens', 1, 'start'], 3) }),
    init({ view: 'prompt', data: withField(prompt, ['tokens', 1, 'value'], 'high') }),
    init({ view: 'prompt', data: withField(prompt, ['tokens', 1, 'id'], -5) }),
    init({ view: 'prompt', data: withField(prompt, ['neuronLabel'], undefined) }),
  ];
  for (const m of bad) assert.equal(isToWebview(m), false, (JSON.stringify(m) ?? String(m)).slice(0, 200));
  // NaN cannot arrive through postMessage's JSON, but a guard must still refuse it.
  assert.equal(isViewPayload({ view: 'neuron', data: { ...neuron, stats: [{ ...neuron.stats[0], value: Number.NaN }] } }), false);
  assert.equal(isPromptData({ ...prompt, tokens: [{ ...prompt.tokens[1], value: Infinity }] }), false);
});

test('persisted state guards', () => {
  const good: PanelState[] = [
    { v: 1, view: 'overview', runDir: '/r' },
    { v: 1, view: 'neuron', runDir: '/r', neuron: { layer: 1, neuron: 2 }, scrollY: 120 },
    { v: 1, view: 'prompt', prompt },
    {
      v: 1,
      view: 'table',
      runDir: '/r',
      table: { universalOnly: true, layer: null, family: null, minExcess: 0.3, maxExcess: null, sort: 'excess_corr', descending: true, page: 2 },
    },
  ];
  for (const s of good) assert.ok(isPanelState(clone(s)), JSON.stringify(s).slice(0, 80));
  const bad: unknown[] = [
    ...junk,
    {},
    { v: 2, view: 'overview' },
    { v: 1, view: 'other' },
    { v: 1, view: 'overview', runDir: 5 },
    { v: 1, view: 'neuron', runDir: '/r', neuron: { layer: -1, neuron: 0 } },
    { v: 1, view: 'prompt', prompt: { ...prompt, tokens: 'x' } },
    { v: 1, view: 'table', table: { universalOnly: 'yes' } },
    { v: 1, view: 'overview', scrollY: -3 },
  ];
  for (const s of bad) assert.equal(isPanelState(s), false, JSON.stringify(s) ?? String(s));
  assert.equal(isTableUiState({ universalOnly: true, layer: null, family: null, minExcess: null, maxExcess: null, sort: 'bogus', descending: true, page: 0 }), false);
  // Role filter and family sorts; states saved before roles existed (no `role`) still load.
  const ui = { universalOnly: true, layer: null, family: 'unigram', minExcess: null, maxExcess: null, sort: 'family_vr', descending: true, page: 0 };
  assert.ok(isTableUiState(ui));
  assert.ok(isTableUiState({ ...ui, role: 'entropy', sort: 'role' }));
  assert.ok(isTableUiState({ ...ui, role: null, sort: 'family' }));
  assert.equal(isTableUiState({ ...ui, role: 'wizard' }), false);
  assert.equal(isTableUiState({ ...ui, role: 3 }), false);
});

test('describeMessage summarises without dumping the payload', () => {
  assert.equal(describeMessage(null), 'null');
  assert.equal(describeMessage([1]), 'an array');
  assert.equal(describeMessage(3), 'number');
  const d = describeMessage({ type: 'x'.repeat(100), secret: 'y'.repeat(10_000) });
  assert.ok(d.length < 120, d);
  assert.match(d, /keys: type, secret/);
});
