/**
 * The extension's command ids, one enum: package.json `contributes.commands` declares the same
 * set (test/unit/commands.test.ts checks both ways). In the view layer because the hover's links
 * name commands (hoverContent.ts); the extension registers them (src/extension/commands/).
 */
export enum Command {
  ShowTokenActivations = 'universalNeurons.showTokenActivations',
  AnalyzeModels = 'universalNeurons.analyzeModels',
  ChooseModel = 'universalNeurons.chooseModel',
  OpenRun = 'universalNeurons.openRun',
  AnalyzePrompt = 'universalNeurons.analyzePrompt',
  ShowNeuron = 'universalNeurons.showNeuron',
  OpenTable = 'universalNeurons.openTable',
  OpenOverview = 'universalNeurons.openOverview',
  ExportTable = 'universalNeurons.exportTable',
  HeatmapNeuron = 'universalNeurons.heatmapNeuron',
  ClearHeatmap = 'universalNeurons.clearHeatmap',
  OpenPromptView = 'universalNeurons.openPromptView',
  RefreshRuns = 'universalNeurons.refreshRuns',
  RemoveRun = 'universalNeurons.removeRun',
  CopyRunPath = 'universalNeurons.copyRunPath',
  InterveneNeuron = 'universalNeurons.interveneNeuron',
  ClearIntervention = 'universalNeurons.clearIntervention',
}

export const COMMANDS: readonly Command[] = Object.values(Command);
