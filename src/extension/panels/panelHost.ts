/**
 * One webview panel on the host side: HTML with a fresh nonce, the ready → init handshake, and
 * the message gate (every message checked by the protocol's guard; wrong shapes are logged and
 * dropped, never acted on).
 */
import * as vscode from 'vscode';
import { describeMessage, isFromWebview, PROTOCOL_VERSION, type FromWebview, type ToWebview, type ViewKind, type ViewPayload } from '../../protocol';
import { makeNonce, RESOURCE_ROOTS, webviewHtml } from './html';
import type { PanelLog } from './log';

export type MessageHandler = (m: Exclude<FromWebview, { type: 'ready' | 'log' }>, host: PanelHost) => void;

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return {
    enableScripts: true,
    enableFindWidget: true,
    // State goes through vscode.setState; hidden panels are torn down and rebuilt from it.
    retainContextWhenHidden: false,
    localResourceRoots: RESOURCE_ROOTS.map((r) => vscode.Uri.joinPath(extensionUri, r)),
  };
}

export class PanelHost implements vscode.Disposable {
  private load?: () => Promise<ViewPayload>;
  private payload?: Promise<ViewPayload>;
  private ready = false;
  private disposed = false;
  private readonly subs: vscode.Disposable[] = [];

  constructor(
    readonly panel: vscode.WebviewPanel,
    readonly view: ViewKind,
    private readonly extensionUri: vscode.Uri,
    private readonly log: PanelLog,
    private readonly onMessage: MessageHandler,
    private readonly onClosed: () => void,
  ) {
    const w = panel.webview;
    w.options = webviewOptions(extensionUri);
    this.subs.push(
      w.onDidReceiveMessage((m: unknown) => this.receive(m)),
      panel.onDidDispose(() => this.closed()),
    );
    this.renderHtml();
  }

  private renderHtml(): void {
    const w = this.panel.webview;
    this.ready = false;
    w.html = webviewHtml({
      view: this.view,
      title: this.panel.title,
      nonce: makeNonce(),
      cspSource: w.cspSource,
      resource: (...p) => w.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, ...p)).toString(),
    });
  }

  /** Sets what the view shows; sent now if the webview is ready, else on its `ready`. */
  setContent(title: string, load: () => Promise<ViewPayload>): void {
    this.panel.title = title;
    this.load = load;
    this.payload = undefined;
    if (this.ready) void this.sendInit();
  }

  /** Shows an error in the panel instead of data. */
  setError(title: string, message: string): void {
    this.setContent(title, () => Promise.reject(new Error(message)));
  }

  /** Posts to the webview (dropped once the panel is closed). */
  post(m: ToWebview): void {
    if (!this.disposed) void this.panel.webview.postMessage(m);
  }

  private async sendInit(): Promise<void> {
    if (!this.load) return;
    const load = this.load;
    this.payload ??= load();
    const p = this.payload;
    try {
      const payload = await p;
      if (this.payload === p) this.post({ type: 'init', protocolVersion: PROTOCOL_VERSION, payload });
    } catch (e) {
      if (this.payload !== p) return;
      const message = e instanceof Error ? e.message : String(e);
      this.log.appendLine(`[${this.view} panel] ${message}`);
      this.post({ type: 'error', message: message.slice(0, 4000) });
      this.payload = undefined; // a later reload retries (the run may have been completed since)
    }
  }

  private receive(m: unknown): void {
    if (!isFromWebview(m)) {
      this.log.appendLine(`[${this.view} panel] ignored a message of the wrong shape: ${describeMessage(m)}`);
      return;
    }
    switch (m.type) {
      case 'ready':
        if (m.view !== this.view) {
          this.log.appendLine(`[${this.view} panel] ignored ready from a ${m.view} view`);
          return;
        }
        if (m.protocolVersion !== PROTOCOL_VERSION) {
          this.log.appendLine(`[${this.view} panel] webview protocol ${m.protocolVersion}, host ${PROTOCOL_VERSION}: asking for a window reload`);
          this.post({ type: 'error', message: `protocol mismatch (view ${m.protocolVersion}, host ${PROTOCOL_VERSION}); reload the window` });
          return;
        }
        this.ready = true;
        void this.sendInit();
        return;
      case 'log':
        this.log.appendLine(`[${this.view} view] ${m.level}: ${m.message}`);
        return;
      default:
        try {
          this.onMessage(m, this);
        } catch (e) {
          this.log.appendLine(`[${this.view} panel] ${m.type} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
    }
  }

  reveal(): void {
    this.panel.reveal(undefined, true);
  }

  private closed(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.subs.splice(0)) s.dispose();
    this.onClosed();
  }

  dispose(): void {
    if (!this.disposed) this.panel.dispose(); // fires onDidDispose → closed()
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}
