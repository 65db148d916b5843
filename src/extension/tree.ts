/**
 * The Runs view (activity bar → Universal Neurons): runs found under the workspace's
 * `.universal-neurons/runs` (and the global store), and the demo run shipped inside the extension
 * ("Demo run (shipped family)", current while no other run is open); the current run expands to its models, the
 * reference model to its layers, each layer to its universal neurons grouped by family (when the
 * run has families; in the method's order, unexplained last). Neuron rows show the label that
 * explains them and their roles, and have inline actions: open the neuron page, heat-map it.
 */
import * as vscode from 'vscode';
import { listRuns, runStatus, type RunView } from '../engine/run/view';
import { Command } from '../view/commandIds';
import { compareFamilies, familyName, isExplained } from '../view/familyText';
import { NO_FAMILY, universalByLayerAndFamily } from '../view/ranking';
import { familyOf, neuronDescription, neuronTooltip } from '../view/rowFamily';
import { DEMO_RUN_TITLE } from './runChoice';
import type { RunState } from './runState';

export const VIEW_ID = 'universalNeurons.runs';

export type Node =
  | { kind: 'run'; dir: string; current: boolean; demo?: boolean }
  | { kind: 'model'; index: number }
  | { kind: 'layer'; layer: number }
  | { kind: 'family'; layer: number; family: string; rows: number[] }
  | { kind: 'neuron'; layer: number; neuron: number; row: number };

export class RunsTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly sub: vscode.Disposable;

  constructor(private readonly runs: RunState) {
    this.sub = runs.onDidChange(() => this.emitter.fire(undefined));
  }

  private get run(): RunView | undefined {
    return this.runs.current;
  }

  getChildren(node?: Node): Node[] {
    const run = this.run;
    if (!node) {
      const dirs = new Set<string>();
      for (const d of this.runs.runsDirs()) for (const r of listRuns(d)) dirs.add(r);
      if (run) dirs.add(run.dir);
      const demo = this.runs.demoDir;
      if (demo) dirs.delete(demo);
      const nodes = [...dirs].map((dir) => ({ kind: 'run', dir, current: !!run && run.dir === dir }) as Node);
      if (demo) nodes.push({ kind: 'run', dir: demo, current: this.runs.isDemo(run), demo: true });
      return nodes.sort((a, b) => Number(b.kind === 'run' && b.current) - Number(a.kind === 'run' && a.current));
    }
    if (!run) return [];
    switch (node.kind) {
      case 'run':
        return node.current ? run.models.map((_, index) => ({ kind: 'model', index })) : [];
      case 'model':
        return node.index === 0 ? Array.from({ length: run.reference.nLayers }, (_, layer) => ({ kind: 'layer', layer })) : [];
      case 'layer': {
        const groups = universalByLayerAndFamily(run)[node.layer]?.families ?? [];
        if (!run.family) return (groups[0]?.rows ?? []).map((row) => this.neuronNode(run, row));
        return [...groups]
          .sort((a, b) => compareFamilies(a.family === NO_FAMILY ? null : a.family, b.family === NO_FAMILY ? null : b.family))
          .map((g) => ({ kind: 'family', layer: node.layer, family: g.family, rows: g.rows }));
      }
      case 'family':
        return node.rows.map((row) => this.neuronNode(run, row));
      default:
        return [];
    }
  }

  private neuronNode(run: RunView, row: number): Node {
    return { kind: 'neuron', layer: run.layer[row]!, neuron: run.neuron[row]!, row };
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const run = this.run;
    const C = vscode.TreeItemCollapsibleState;
    switch (node.kind) {
      case 'run': {
        if (node.demo) return this.demoItem(node);
        const s = runStatus(node.dir);
        const item = new vscode.TreeItem(s.id, node.current ? C.Expanded : C.None);
        item.description = node.current ? 'current' : s.status === 'complete' ? s.models : s.status;
        item.tooltip = `${node.dir}\nstatus: ${s.status}${s.detail ? ` (the run ${s.detail})` : ''}\nmodels: ${s.models}`;
        item.iconPath = new vscode.ThemeIcon(node.current ? 'pass-filled' : s.status === 'complete' ? 'circle-large-outline' : 'warning');
        item.contextValue = node.current ? 'run.current' : s.status === 'complete' ? 'run' : 'run.incomplete';
        item.resourceUri = vscode.Uri.file(node.dir);
        if (!node.current && s.status === 'complete') item.command = { command: Command.OpenRun, title: 'Open Run', arguments: [node.dir] };
        return item;
      }
      case 'model': {
        const m = run!.models[node.index]!;
        const ref = node.index === 0;
        const item = new vscode.TreeItem(m.label, ref ? C.Collapsed : C.None);
        let universal = 0;
        if (ref) for (const u of run!.universal) universal += u;
        item.description = ref ? `reference · ${universal} universal` : 'compared';
        item.tooltip = `${m.dir}\n${m.nLayers} layers × ${m.dMlp} neurons`;
        item.iconPath = new vscode.ThemeIcon(ref ? 'star-full' : 'symbol-class');
        item.contextValue = ref ? 'model.reference' : 'model';
        return item;
      }
      case 'layer': {
        let n = 0;
        for (let r = 0; r < run!.nRows; r++) if (run!.layer[r] === node.layer && run!.universal[r]) n++;
        const item = new vscode.TreeItem(`Layer ${node.layer}`, n ? C.Collapsed : C.None);
        item.description = `${n} universal of ${run!.reference.dMlp}`;
        item.iconPath = new vscode.ThemeIcon('layers');
        item.contextValue = 'layer';
        return item;
      }
      case 'family': {
        const named = node.family !== NO_FAMILY;
        const item = new vscode.TreeItem(named ? familyName(node.family) : node.family, C.Collapsed);
        item.description = String(node.rows.length);
        item.iconPath = new vscode.ThemeIcon(isExplained(named ? node.family : null) ? 'symbol-folder' : 'question');
        item.contextValue = 'family';
        return item;
      }
      case 'neuron': {
        const label = `L${node.layer}.N${node.neuron}`;
        const item = new vscode.TreeItem(label, C.None);
        const ex = run!.excess[node.row]!;
        const f = familyOf(run!, node.row);
        item.description = neuronDescription(ex, f);
        item.tooltip = neuronTooltip(label, ex, run!.columns.mean_corr?.[node.row], run!.columns.mean_baseline?.[node.row], f);
        item.iconPath = new vscode.ThemeIcon('circle-filled');
        item.contextValue = 'neuron';
        item.command = { command: Command.ShowNeuron, title: 'Open Neuron Page', arguments: [{ layer: node.layer, neuron: node.neuron }] };
        return item;
      }
    }
  }

  /** The shipped demo run: never removed (its context value is not run*), opened on click. */
  private demoItem(node: Extract<Node, { kind: 'run' }>): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    const s = runStatus(node.dir);
    const item = new vscode.TreeItem(DEMO_RUN_TITLE, node.current ? C.Expanded : C.None);
    item.description = node.current ? 'current · ships with the extension' : 'ships with the extension';
    item.tooltip =
      `${node.dir}\nstatus: ${s.status}\nmodels: ${s.models}\n` +
      'The analysis `npm run demo` makes of the shipped family on its held-out corpus. Used while no other run is open.';
    item.iconPath = new vscode.ThemeIcon(node.current ? 'pass-filled' : 'beaker');
    item.contextValue = node.current ? 'demo.current' : 'demo';
    if (!node.current) item.command = { command: Command.OpenRun, title: 'Open Run', arguments: [node.dir] };
    return item;
  }

  refresh(): void {
    this.emitter.fire(undefined);
  }

  dispose(): void {
    this.sub.dispose();
    this.emitter.dispose();
  }
}
