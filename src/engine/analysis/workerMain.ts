/**
 * Entry of the analysis worker bundle (dist/analysisWorker.js, esbuild.config.mjs): serves one
 * analysis to the thread that started it (worker.ts; the client is workerClient.ts).
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { serveAnalysis } from './worker';

if (isMainThread || !parentPort) throw new Error('analysisWorker.js runs as a worker thread (node:worker_threads), started by workerClient.ts');
serveAnalysis(parentPort);
