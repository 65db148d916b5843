/**
 * The webview's side of the host connection: typed posting, and the persisted state
 * (vscode.getState/setState), which survives reloads and is handed to the host's panel serializer
 * when VS Code restarts. State read back is checked like any message.
 */
import { isPanelState, MAX_TEXT, type FromWebview, type LogLevel, type PanelState, type ViewKind } from '../src/protocol';

interface VsCodeApi {
  postMessage(message: FromWebview): void;
  getState(): unknown;
  setState(state: PanelState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api: VsCodeApi = acquireVsCodeApi();

export function post(m: FromWebview): void {
  api.postMessage(m);
}

/** Sends a line to the host's output channel. */
export function log(level: LogLevel, message: string): void {
  post({ type: 'log', level, message: message.slice(0, MAX_TEXT) });
}

let state: PanelState | undefined;

/** The persisted state if it is valid and belongs to this view. */
export function loadState(view: ViewKind): PanelState | undefined {
  const s = api.getState();
  if (s === undefined || s === null) return undefined;
  if (!isPanelState(s) || s.view !== view) {
    log('warn', `ignored saved ${view} view state of the wrong shape`);
    return undefined;
  }
  state = s;
  return s;
}

/** The state as last saved (or loaded). */
export function currentState(): PanelState | undefined {
  return state;
}

/** Merges `patch` into the persisted state. */
export function saveState(view: ViewKind, patch: Partial<Omit<PanelState, 'v' | 'view'>>): void {
  state = { ...(state ?? {}), ...patch, v: 1, view };
  api.setState(state);
}
