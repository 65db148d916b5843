// Family labels in words and the overview's family/role tallies (src/view/familyText.ts,
// counts.ts): the same phrases appear in the hover, the tree and the webviews.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { familyLayerCounts, roleCounts } from '../../src/view/counts';
import { compareFamilies, describeLabel, familyName, FAMILY_ORDER, isExplained } from '../../src/view/familyText';

test('describeLabel: every label kind the engine writes, prev: labels, unknown ones as written', () => {
  const cases: [string, string][] = [
    ['unigram:the', 'token is “the”'],
    ['prev:unigram:of', 'previous token is “of”'],
    ['alphabet:t', 'token is the letter t'],
    ['prev:alphabet:t', 'previous token is the letter t'],
    ['feature:starts-t', 'token starts with t'],
    ['feature:space', 'token starts with a space'],
    ['feature:capitalised', 'token is capitalised'],
    ['feature:all-caps', 'token is in capitals'],
    ['feature:numeric', 'token is a number'],
    ['feature:year', 'token is a year'],
    ['feature:newline', 'token contains a newline'],
    ['feature:punct-comma', 'token is a comma, semicolon or colon'],
    ['feature:punct-new', 'token is punctuation (new)'],
    ['prev:feature:space', 'previous token starts with a space'],
    ['pos:NOUN', 'part of speech NOUN'],
    ['pos:.', 'part of speech . (punctuation)'],
    ['prev:pos:DET', 'previous token: part of speech DET'],
    ['source:kjv', 'document source kjv'],
    ['topic:brown/press', 'document topic brown/press'],
    ['position:<32', 'position < 32'],
    ['position:=5', 'position = 5'],
    ['position:>=7', 'position ≥ 7'],
    ['position:odd', 'position odd'],
    ['weird:thing', 'weird:thing'],
    ['nocolon', 'nocolon'],
    [':x', ':x'],
  ];
  for (const [label, text] of cases) assert.equal(describeLabel(label), text, label);
});

test('families in the method order, unexplained last; names in words', () => {
  const shuffled = ['unexplained', null, 'semantic', 'zzz', 'unigram', 'previous-token', 'aaa'];
  assert.deepEqual([...shuffled].sort(compareFamilies), ['unigram', 'previous-token', 'semantic', 'unexplained', 'aaa', 'zzz', null]);
  assert.equal(FAMILY_ORDER.at(-1), 'unexplained');
  assert.equal(familyName('previous-token'), 'previous token');
  assert.equal(isExplained('unexplained'), false);
  assert.equal(isExplained(null), false);
  assert.equal(isExplained('position'), true);
});

test('family and role tallies per layer: all and universal, several roles counted under each', () => {
  const family = ['unigram', 'unexplained', null, 'unigram', 'position', 'unigram'];
  const layer = [0, 0, 0, 1, 1, 1];
  const universal = [true, false, true, false, true, true];
  assert.deepEqual(familyLayerCounts(family, layer, universal, 2), [
    { family: 'unigram', all: [1, 2], universal: [1, 1] },
    { family: 'position', all: [0, 1], universal: [0, 1] },
    { family: 'unexplained', all: [1, 0], universal: [0, 0] },
  ]);
  const roles = roleCounts([['prediction', 'partition'], [], ['entropy'], ['prediction'], [], []], layer, universal, 2);
  assert.deepEqual(
    roles.map((r) => [r.role, r.neurons, r.universal, r.byLayer]),
    [
      ['prediction', 2, 1, [1, 1]],
      ['suppression', 0, 0, [0, 0]],
      ['partition', 1, 1, [1, 0]],
      ['entropy', 1, 1, [1, 0]],
      ['attention-deactivation', 0, 0, [0, 0]],
    ],
  );
});
