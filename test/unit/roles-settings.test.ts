// The role settings (run/roleSettings.ts): one table behind the CLI's --roles, the editor's
// universalNeurons.roles (package.json) and the plan's options, and what the manifest records.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseCli, UsageError } from '../../src/cli/args';
import { familyChoices, withRoleSettings } from '../../src/engine/analysis/familyResults';
import { DEFAULT_ENTROPY_QUERY } from '../../src/engine/analysis/roles';
import { ROLE_SETTING_KEYS, ROLE_SETTINGS, type RoleSetting } from '../../src/engine/run/roleSettings';

const ANALYZE = ['analyze', '--models', 'a', 'b', '--corpus', 'c.txt', '--tokens', '64'];

test('package.json declares every role setting with the engine default and range', () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
  const decl = pkg.contributes.configuration.properties['universalNeurons.roles'];
  assert.deepEqual(Object.keys(decl.properties), ROLE_SETTING_KEYS);
  for (const k of ROLE_SETTING_KEYS) {
    const s: RoleSetting = ROLE_SETTINGS[k];
    const p = decl.properties[k];
    assert.equal(p.default, s.default, k);
    assert.equal(p.type, s.integer ? 'integer' : 'number', k);
    assert.equal(s.exclusiveMin ? p.exclusiveMinimum : p.minimum, s.min, k);
    assert.equal(p.maximum, s.max, k);
  }
  // The paper's query and the budget are the defaults.
  assert.deepEqual({ ...DEFAULT_ENTROPY_QUERY }, { layerFraction: 0.2, l2: 3, vocabKurt: 10, kurt: 10 });
  assert.ok(ROLE_SETTINGS.interventionRows.default >= 256);
});

test('--roles: parsed by name, checked against the table', () => {
  const c = parseCli([...ANALYZE, '--roles', 'entropy-layers=0.5,entropy-l2=2, intervention-rows=300 attention-pairs=0']);
  assert.deepEqual(c.kind === 'analyze' && c.roles, { entropyLayers: 0.5, entropyL2: 2, interventionRows: 300, attentionPairs: 0 });
  const bad = (arg: string, re: RegExp) => assert.throws(() => parseCli([...ANALYZE, '--roles', arg]), (e: unknown) => e instanceof UsageError && re.test(e.message));
  bad('entropy-layers=0', /entropy-layers needs a number > 0 and <= 1, got 0/);
  bad('entropy-layers=1.5', /<= 1/);
  bad('intervention-rows=2.5', /intervention-rows needs an integer >= 1/);
  bad('entropy-neurons=-1', /entropy-neurons needs an integer >= 0/);
  bad('entropy-l2=', /entropy-l2 needs a number >= 0, got ""/);
  bad('wat=1', /unknown setting "wat"/);
});

test('the settings reach the plan options, and the manifest text records the values used', () => {
  const o = withRoleSettings({ roleSettings: { entropyLayers: 0.5, entropyL2: 2, entropyVocabKurt: 7, entropyKurt: 8, entropyNeurons: 1, interventionRows: 300, attentionZ: 4, attentionPairs: 7 } });
  assert.deepEqual(o.roles, { entropy: { layerFraction: 0.5, l2: 2, vocabKurt: 7, kurt: 8 }, attentionZ: 4, topPairs: 7 });
  assert.equal(o.interventions, 1);
  assert.equal(o.interventionRows, 300);
  const ch = familyChoices(o);
  assert.match(ch.roles!, /round\(0\.5·n_layers\)\) layers, l2_penalty ≥ 2, vocab_kurt ≤ 7, kurt \(the paper's histogram column\) ≤ 8, ranked by vocab_var/);
  assert.match(ch.roles!, /z-score > 4 .*top 7/);
  assert.match(ch.entropy_intervention!, /the top 1 of the entropy ranking .* first 300 corpus rows/);
  assert.match(familyChoices({}).entropy_intervention!, /first 256 corpus rows/);
  // A value the editor's settings.json let through is refused by the engine, by name.
  assert.throws(() => withRoleSettings({ roleSettings: { interventionRows: 0 } }), /role setting intervention-rows needs an integer >= 1, got 0/);
});
