/**
 * Turns off onnxruntime's telemetry before its environment is created. Imported for its side
 * effect, first, by every module that loads onnxruntime-node (runtime.ts, the CLI entry, the
 * analysis pipeline, whose GEMM sessions also load it).
 *
 * onnxruntime-node 1.30.0's Linux/macOS binary carries Microsoft's 1DS telemetry SDK ("Add POSIX
 * telemetry", microsoft/onnxruntime#27379). When the first session creates the ORT environment
 * (not when the package is loaded: measured), the SDK opens its debug log /tmp/mat-debug-<pid>.log
 * (`<TMPDIR>/mat-debug-<pid>.log`; empty, never removed), reads /etc/machine-id, writes a device id
 * and an offline event cache under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/, and queues
 * events for https://mobile.events.data.microsoft.com. This extension promises offline analysis,
 * so it opts out: with ORT_DISABLE_TELEMETRY=1 set before the environment exists, the SDK is
 * never started (strace: no mat-debug file, no cache, no device id). The value is latched by ORT
 * for the life of the process. A value the user set explicitly (e.g. 0) is left alone. The
 * variable is process-wide: in the editor it also reaches any other onnxruntime-node loaded in the
 * same extension host, and child processes inherit it.
 */
if (process.env.ORT_DISABLE_TELEMETRY === undefined) process.env.ORT_DISABLE_TELEMETRY = '1';

export {};
