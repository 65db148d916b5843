/**
 * Entry of the analysis worker bundle (dist/analysisWorker.js, esbuild.config.mjs): as a worker
 * thread, serves one analysis to the thread that started it (worker.ts; the client is
 * workerClient.ts); as a child process (`isolation: 'process'`), starts that worker and relays.
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { serveAnalysis } from './worker';
import { relayAnalysis } from './workerClient';

if (!isMainThread && parentPort) serveAnalysis(parentPort);
else if (process.send) relayAnalysis();
else throw new Error('analysisWorker.js runs as a worker thread or a child process with an IPC channel, started by workerClient.ts');
