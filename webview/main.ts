/**
 * Webview entry (bundled to dist/webview.js, browser/iife). One bundle serves every view; the
 * host names the view in `<body data-view="…">`. Handshake: post `ready`, render on `init`.
 * Every message from the host is checked with the protocol's guard first; a wrong shape is
 * dropped and reported to the host's output channel.
 */
import { isToWebview, isViewKind, PROTOCOL_VERSION, type ToWebview, type ViewKind, type ViewPayload } from '../src/protocol';
import type { ViewContext } from './common';
import { clear, el } from './dom';
import { currentState, loadState, log, post, saveState } from './host';
import { renderNeuron } from './neuron';
import { renderOverview } from './overview';
import { renderPrompt } from './prompt';
import { renderTable } from './table';
import { progressRing, registerToolkit } from './ui';

registerToolkit();

const app = document.getElementById('app') ?? document.body;
const viewAttr = document.body.dataset.view;

function fail(message: string): void {
  clear(app);
  app.append(el('div', { class: 'error', attrs: { role: 'alert' } }, el('h1', { text: 'Universal Neurons' }), el('p', { text: message })));
}

function start(view: ViewKind): void {
  const saved = loadState(view);
  let disposers: (() => void)[] = [];
  let effectListener: ((m: Extract<ToWebview, { type: 'effect' }>) => void) | undefined;
  let restoreScroll = saved?.scrollY;

  clear(app);
  app.append(el('p', { class: 'loading' }, progressRing('Loading'), ' Loading…'));

  const ctx: ViewContext = {
    openNeuron: (ref) => post({ type: 'openNeuron', layer: ref.layer, neuron: ref.neuron }),
    openView: (v) => post({ type: 'openView', view: v }),
    intervene: (ref) => post({ type: 'intervene', layer: ref.layer, neuron: ref.neuron }),
    measureEffect: (ref) => post({ type: 'measureEffect', layer: ref.layer, neuron: ref.neuron }),
    cancelEffect: () => post({ type: 'cancelEffect' }),
    onEffect: (fn) => void (effectListener = fn),
    onDispose: (fn) => disposers.push(fn),
  };

  function render(p: ViewPayload): void {
    for (const d of disposers) d();
    disposers = [];
    effectListener = undefined;
    clear(app);
    try {
      switch (p.view) {
        case 'overview':
          saveState(view, { runDir: p.data.run.runDir });
          renderOverview(app, p.data, ctx);
          break;
        case 'table':
          saveState(view, { runDir: p.data.run.runDir });
          renderTable(app, p.data, ctx, currentState()?.table, (table) => saveState(view, { table }));
          break;
        case 'neuron':
          saveState(view, { runDir: p.data.run.runDir, neuron: { layer: p.data.layer, neuron: p.data.neuron } });
          renderNeuron(app, p.data, ctx);
          break;
        case 'prompt':
          saveState(view, { prompt: p.data });
          renderPrompt(app, p.data, ctx, (start, end) => post({ type: 'revealRange', start, end }));
          break;
      }
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      log('error', `${view} view failed to render: ${msg}`);
      fail(`This view failed to render: ${msg}`);
      return;
    }
    if (restoreScroll !== undefined) {
      window.scrollTo(0, restoreScroll);
      restoreScroll = undefined;
    } else if (p.view === 'neuron' || p.view === 'prompt') window.scrollTo(0, 0); // a re-targeted page starts at its top
  }

  let scrollTimer: ReturnType<typeof setTimeout> | undefined;
  window.addEventListener('scroll', () => {
    clearTimeout(scrollTimer);
    scrollTimer = setTimeout(() => saveState(view, { scrollY: Math.max(0, Math.round(window.scrollY)) }), 200);
  });

  window.addEventListener('message', (event: MessageEvent<unknown>) => {
    const m = event.data;
    if (!isToWebview(m)) {
      log('warn', `${view} view ignored a message of the wrong shape`);
      return;
    }
    if (m.type === 'error') return fail(m.message);
    if (m.type === 'effect') return effectListener?.(m);
    if (m.protocolVersion !== PROTOCOL_VERSION) return fail(`protocol mismatch: host ${m.protocolVersion}, view ${PROTOCOL_VERSION}. Reload the window.`);
    if (m.payload.view !== view) {
      log('warn', `${view} view ignored init data for the ${m.payload.view} view`);
      return;
    }
    render(m.payload);
  });

  window.addEventListener('error', (e) => log('error', `${view} view: ${e.message}`));
  post({ type: 'ready', protocolVersion: PROTOCOL_VERSION, view });
}

if (isViewKind(viewAttr)) start(viewAttr);
else fail(`unknown view ${JSON.stringify(viewAttr)}`);
