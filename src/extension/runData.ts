/**
 * The host's side of the panels' payloads: a loaded run (src/engine/run/data.ts) through the view
 * layer's builders (src/view/payloads.ts), with the host's file access for a neuron's examples.
 * No `vscode` import (unit-tested).
 */
import { RunDataError } from '../engine/errors';
import type { RunData } from '../engine/run/data';
import { readNeuronExamples } from '../engine/run/examples';
import type { NeuronData, NeuronRef, OverviewData, TableData } from '../protocol';
import * as payloads from '../view/payloads';

export { RunDataError };

export const overviewData = (run: RunData): OverviewData => payloads.overviewData(run);

export const tableData = (run: RunData): TableData => payloads.tableData(run);

/** One neuron's page. Throws RunDataError when the neuron is not in the run. */
export function neuronData(run: RunData, ref: NeuronRef): NeuronData {
  const d = payloads.neuronData(run, ref, (j) => readNeuronExamples(run.dir, run.examples!, j));
  if (!d) throw new RunDataError(`L${ref.layer}.N${ref.neuron} is not a neuron of this run (${run.nLayers} layers × ${run.dMlp})`, run.dir);
  return d;
}
