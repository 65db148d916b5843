/** Settings (`universalNeurons.*`) and where the model comes from. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import * as vscode from 'vscode';
import { DEFAULT_THRESHOLD } from '../engine/run/defaults';
import { ROLE_SETTING_KEYS, type RoleSettings } from '../engine/run/roleSettings';
import { DEFAULT_MODEL, fixtureCheckpoint, isCheckpointDir } from '../locate';

export const SECTION = 'universalNeurons';

export interface Settings {
  modelPath: string;
  topK: number;
  threads: number;
  /** onnxruntime's execution provider (cpu or cuda, provider.ts) for prompt forwards and analyses. */
  executionProvider: 'cpu' | 'cuda';
  maxPromptBytes: number;
  maxPromptTokens: number;
  /** Glob patterns of prompt files (hover, heat-map), besides plaintext and markdown documents. */
  promptGlobs: string[];
  /** Universal ⇔ excess correlation above this (new analyses). */
  universalThreshold: number;
  /** Quiet time after an edit before an analysed document is re-analysed, ms. */
  reanalyzeDelayMs: number;
  /** Families and roles in new analyses. */
  families: boolean;
  /** Family thresholds (new analyses); unset keys keep the method's defaults. */
  familyThresholds: Partial<Record<FamilyThresholdKey, number>>;
  /** Role settings (new analyses); unset keys keep the defaults, a value out of range is refused by the engine by name. */
  roles: RoleSettings;
}

const FAMILY_THRESHOLD_KEYS = ['unigram', 'alphabet', 'feature', 'syntax', 'semantic', 'positionMi', 'positionKurtosis'] as const;
export type FamilyThresholdKey = (typeof FAMILY_THRESHOLD_KEYS)[number];

function familyThresholds(v: unknown): Partial<Record<FamilyThresholdKey, number>> {
  const out: Partial<Record<FamilyThresholdKey, number>> = {};
  if (!v || typeof v !== 'object') return out;
  for (const k of FAMILY_THRESHOLD_KEYS) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x === 'number' && Number.isFinite(x) && x >= 0) out[k] = x;
  }
  return out;
}

function roleSettings(v: unknown): RoleSettings {
  const out: RoleSettings = {};
  if (!v || typeof v !== 'object') return out;
  for (const k of ROLE_SETTING_KEYS) {
    const x = (v as Record<string, unknown>)[k];
    if (typeof x === 'number') out[k] = x;
  }
  return out;
}

export const DEFAULT_PROMPT_GLOBS = ['**/*.prompt', '**/*.txt'];

function int(v: unknown, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  return typeof v === 'number' && Number.isFinite(v) ? Math.min(max, Math.max(min, Math.floor(v))) : def;
}

/** A finite number as it is (the engine checks its range and says what is wrong), else the default. */
function finite(v: unknown, def: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : def;
}

function stringList(v: unknown, def: string[]): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.trim() !== '').map((x) => x.trim()) : def;
}

/**
 * Clamped to the ranges package.json declares: a hand-edited settings.json is not validated. The
 * universal threshold is the engine's (src/engine/run/defaults.ts): its default, and its range,
 * which the engine checks when an analysis starts.
 */
export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    modelPath: (c.get<string>('modelPath') ?? '').trim(),
    topK: int(c.get('topK'), 5, 1, 100),
    threads: int(c.get('threads'), 0, 0),
    executionProvider: c.get('executionProvider') === 'cuda' ? 'cuda' : 'cpu',
    maxPromptBytes: int(c.get('maxPromptBytes'), 1_000_000, 1),
    maxPromptTokens: int(c.get('maxPromptTokens'), 8192, 2),
    promptGlobs: stringList(c.get('promptGlobs'), DEFAULT_PROMPT_GLOBS),
    universalThreshold: finite(c.get('universalThreshold'), DEFAULT_THRESHOLD),
    reanalyzeDelayMs: int(c.get('reanalyzeDelayMs'), 300, 0, 10_000),
    families: c.get('families') !== false,
    familyThresholds: familyThresholds(c.get('familyThresholds')),
    roles: roleSettings(c.get('roles')),
  };
}

export interface ModelChoice {
  dir: string;
  source: 'setting' | 'shipped' | 'fixture';
}

/**
 * The setting wins (`~/` expanded, relative paths against the first workspace folder); else the
 * shipped tiny-gpt2-a; else, in a development checkout whose family is not trained yet, the
 * test-fixture checkpoint. A setting that points nowhere is left to the engine to report.
 */
export function chooseModel(modelPath: string, extensionPath: string): ModelChoice {
  if (modelPath) {
    let p = modelPath.startsWith('~/') ? join(homedir(), modelPath.slice(2)) : modelPath;
    if (!isAbsolute(p)) {
      const ws = vscode.workspace.workspaceFolders?.[0];
      p = ws?.uri.scheme === 'file' ? resolve(ws.uri.fsPath, p) : resolve(p);
    }
    return { dir: p, source: 'setting' };
  }
  const shipped = join(extensionPath, DEFAULT_MODEL);
  if (isCheckpointDir(shipped)) return { dir: shipped, source: 'shipped' };
  const fixture = fixtureCheckpoint(extensionPath);
  if (fixture) return { dir: fixture, source: 'fixture' };
  throw new Error(
    `no model: the shipped ${DEFAULT_MODEL} is missing from ${extensionPath}` +
      (existsSync(shipped) ? ' (incomplete folder)' : '') +
      `. Set ${SECTION}.modelPath to a GPT-2 checkpoint folder (config.json, model.safetensors, tokenizer.json).`,
  );
}
