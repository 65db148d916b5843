/**
 * Prompt activations per document version: what `Analyze Prompt`, the hover and the heat-map
 * read. One cache entry per open document (dropped when it closes), keyed by version and model;
 * a result computed for a version the document has since left is discarded, never shown.
 * Documents analysed once are followed: an edit schedules a re-analysis after a quiet period
 * (not in Restricted Mode, where only an explicit command analyses), superseding any run in flight.
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as vscode from 'vscode';
import { CancelledError, type CancellationSignal } from '../engine/errors';
import type { PromptActivations } from '../engine/promptRun';
import { errorLine } from '../format';
import { runModelDir } from '../locate';
import { chooseModel, readSettings } from './config';
import type { EngineHost } from './engineHost';
import { checkDocument } from './prompt';
import type { RunState } from './runState';

export interface PromptModel {
  dir: string;
  label: string;
  /** 'run': the current run's reference model (neurons can be marked universal). */
  source: 'run' | 'setting' | 'shipped' | 'fixture';
  runDir?: string;
  runId?: string;
}

export interface PromptResult extends PromptActivations {
  uri: string;
  version: number;
  model: PromptModel;
  /** The tokenizer's spelling of each token (partial UTF-8 shows as U+FFFD). */
  tokenText: string[];
  /** Characters analysed. */
  chars: number;
}

export type AnalyzeOutcome =
  | { status: 'ok'; result: PromptResult; cached: boolean }
  | { status: 'stale'; message: string }
  | { status: 'cancelled' }
  | { status: 'error'; message: string };

interface Flight {
  version: number;
  modelKey: string;
  cancel: { cancelled: boolean };
  promise: Promise<AnalyzeOutcome>;
}

/** The model prompts are analysed with: the current run's reference model, else the setting / shipped model. */
export function promptModel(run: RunState['current'], extensionPath: string): PromptModel {
  if (run) {
    const ref = run.reference;
    // A run made elsewhere (the shipped demo run, or one the CLI made from a checkout) names a
    // folder this machine may lack; the shipped family member of the same label stands in.
    const dir = runModelDir(ref, extensionPath);
    if (!existsSync(join(dir, 'config.json'))) {
      throw new Error(`the reference model of run ${run.id} (${ref.dir}) is missing; open another run or restore the model folder`);
    }
    return { dir, label: ref.label, source: 'run', runDir: run.dir, runId: run.id };
  }
  const s = readSettings();
  const c = chooseModel(s.modelPath, extensionPath);
  return { dir: c.dir, label: basename(c.dir), source: c.source };
}

export class PromptAnalyzer implements vscode.Disposable {
  private readonly cache = new Map<string, PromptResult>();
  private readonly flights = new Map<string, Flight>();
  private readonly followed = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly analyzed = new vscode.EventEmitter<PromptResult>();
  /** A fresh result for a document (its current version). */
  readonly onDidAnalyze = this.analyzed.event;
  private readonly disposables: vscode.Disposable[] = [];
  /** Extension-host tests only: a pause after the model run, so an edit can land deterministically mid-analysis. */
  testDelayMs = 0;

  constructor(
    private readonly extensionPath: string,
    private readonly host: EngineHost,
    private readonly run: RunState,
    private readonly log: vscode.OutputChannel,
  ) {
    this.disposables.push(
      this.analyzed,
      vscode.workspace.onDidCloseTextDocument((doc) => this.forget(doc.uri.toString())),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length > 0) this.edited(e.document);
      }),
      // Another run (another reference model) makes every cached result the wrong model's.
      run.onDidChange(() => {
        for (const uri of this.followed) {
          const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
          if (doc) this.schedule(doc, 0);
        }
      }),
    );
  }

  /** Is `doc` followed (analysed once, re-analysed on edit)? */
  isFollowed(doc: vscode.TextDocument): boolean {
    return this.followed.has(doc.uri.toString());
  }

  /** Is an analysis of this document running now? */
  isAnalyzing(doc: vscode.TextDocument): boolean {
    return this.flights.has(doc.uri.toString());
  }

  /** The result for the document's current version with the current model, if there is one. */
  fresh(doc: vscode.TextDocument): PromptResult | undefined {
    const r = this.cache.get(doc.uri.toString());
    if (!r || r.version !== doc.version) return undefined;
    if (this.run.current ? r.model.runDir !== this.run.current.dir : r.model.source === 'run') return undefined;
    return r;
  }

  /** The last result for the document, whatever its version (for a stale notice). */
  last(doc: vscode.TextDocument): PromptResult | undefined {
    return this.cache.get(doc.uri.toString());
  }

  /**
   * Analyses the document's current version (or returns the cached result). `follow` adds it to
   * the documents re-analysed on edit.
   */
  analyze(doc: vscode.TextDocument, opts: { signal?: CancellationSignal; follow?: boolean } = {}): Promise<AnalyzeOutcome> {
    const uri = doc.uri.toString();
    if (opts.follow) this.followed.add(uri);
    const cached = this.fresh(doc);
    if (cached) return Promise.resolve({ status: 'ok', result: cached, cached: true });
    let model: PromptModel;
    try {
      model = promptModel(this.run.current, this.extensionPath);
    } catch (e) {
      return Promise.resolve({ status: 'error', message: errorLine(e) });
    }
    const modelKey = `${resolve(model.dir)}\0${model.runDir ?? ''}`;
    const flight = this.flights.get(uri);
    if (flight && flight.version === doc.version && flight.modelKey === modelKey) return this.withSignal(flight.promise, opts.signal);
    if (flight) flight.cancel.cancelled = true; // superseded
    const cancel = { cancelled: false };
    const signal: CancellationSignal = {
      get cancelled() {
        return cancel.cancelled || !!opts.signal?.cancelled;
      },
    };
    const promise = this.compute(doc, model, signal).finally(() => {
      if (this.flights.get(uri)?.promise === promise) this.flights.delete(uri);
    });
    this.flights.set(uri, { version: doc.version, modelKey, cancel, promise });
    return promise;
  }

  /** A shared flight awaited by a caller with its own signal: that caller may stop waiting. */
  private withSignal(p: Promise<AnalyzeOutcome>, signal: CancellationSignal | undefined): Promise<AnalyzeOutcome> {
    if (!signal) return p;
    return new Promise((res) => {
      const iv = setInterval(() => {
        if (signal.cancelled) {
          clearInterval(iv);
          res({ status: 'cancelled' });
        }
      }, 100);
      void p.then((r) => {
        clearInterval(iv);
        res(r);
      });
    });
  }

  private async compute(doc: vscode.TextDocument, model: PromptModel, signal: CancellationSignal): Promise<AnalyzeOutcome> {
    const uri = doc.uri.toString();
    const version = doc.version;
    const settings = readSettings();
    try {
      const text = await checkDocument(doc, settings.maxPromptBytes, () => this.host.loadTokenizer());
      const pr = await import('../engine/promptRun');
      const { acts, tokenText } = await this.host.use(model.dir, settings.threads, async (_rt, m) => {
        const acts = await pr.promptActivations(m, text, { signal, maxTokens: settings.maxPromptTokens });
        return { acts, tokenText: acts.tokens.map((t) => m.tokenizer.tokenString(t.id)) };
      });
      if (this.testDelayMs > 0) await new Promise((r) => setTimeout(r, this.testDelayMs));
      if (signal.cancelled) throw new CancelledError();
      if (doc.isClosed) return { status: 'stale', message: 'the document was closed during the analysis' };
      if (doc.version !== version) {
        // Edited meanwhile: these activations belong to text that is gone.
        this.log.appendLine(`${vscode.workspace.asRelativePath(doc.uri)}: discarded the result for version ${version} (now ${doc.version})`);
        return { status: 'stale', message: `the document changed during the analysis (version ${version} → ${doc.version}); result discarded` };
      }
      const result: PromptResult = { ...acts, uri, version, model, tokenText, chars: text.length };
      this.cache.set(uri, result);
      this.log.appendLine(
        `${vscode.workspace.asRelativePath(doc.uri)} v${version}: ${acts.tokens.length} tokens on ${model.label}` +
          ` (tokenize ${acts.tokenizeMs.toFixed(0)} ms, run ${acts.runMs.toFixed(0)} ms)`,
      );
      this.analyzed.fire(result);
      return { status: 'ok', result, cached: false };
    } catch (e) {
      if (e instanceof CancelledError) {
        // Stopped because the text changed under it (edited() cancels superseded runs): that is a stale result, not a user's cancel.
        if (!doc.isClosed && doc.version !== version) {
          return { status: 'stale', message: `the document changed during the analysis (version ${version} → ${doc.version}); result discarded` };
        }
        return { status: 'cancelled' };
      }
      return { status: 'error', message: errorLine(e) };
    }
  }

  private edited(doc: vscode.TextDocument): void {
    const uri = doc.uri.toString();
    if (!this.followed.has(uri)) return;
    // A run in flight for an older version is now useless.
    const f = this.flights.get(uri);
    if (f && f.version !== doc.version) f.cancel.cancelled = true;
    if (!vscode.workspace.isTrusted) return; // Restricted Mode: only explicit commands analyse.
    this.schedule(doc, readSettings().reanalyzeDelayMs);
  }

  private schedule(doc: vscode.TextDocument, delayMs: number): void {
    const uri = doc.uri.toString();
    clearTimeout(this.timers.get(uri));
    this.timers.set(
      uri,
      setTimeout(() => {
        this.timers.delete(uri);
        if (doc.isClosed || !vscode.workspace.isTrusted) return;
        void this.analyze(doc).then((o) => {
          if (o.status === 'error') this.log.appendLine(`${vscode.workspace.asRelativePath(doc.uri)}: ${o.message}`);
        });
      }, delayMs),
    );
  }

  /** Waits for a re-analysis already scheduled or running for this document (hover on a just-edited text). */
  async pending(doc: vscode.TextDocument, signal?: CancellationSignal): Promise<PromptResult | undefined> {
    const uri = doc.uri.toString();
    if (!this.followed.has(uri) || !vscode.workspace.isTrusted) return undefined;
    clearTimeout(this.timers.get(uri));
    this.timers.delete(uri);
    const o = await this.analyze(doc, { signal });
    return o.status === 'ok' ? o.result : undefined;
  }

  private forget(uri: string): void {
    this.cache.delete(uri);
    this.followed.delete(uri);
    clearTimeout(this.timers.get(uri));
    this.timers.delete(uri);
    const f = this.flights.get(uri);
    if (f) f.cancel.cancelled = true;
  }

  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    for (const f of this.flights.values()) f.cancel.cancelled = true;
    for (const d of this.disposables) d.dispose();
  }
}
