/**
 * A small ONNX graph builder over `onnx-proto` (the ONNX 1.10 schema). It knows nothing about
 * transformers: architectures in `arch/` describe their graphs with it.
 *
 * Initializer data may be given lazily (a thunk), so a weight is read from disk only when the
 * graph is serialized, and only if some node uses it.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { EngineError, ioReason } from './errors';

export type ElemType = 'float' | 'int64';
export type TensorData = Float32Array | BigInt64Array;
export type Dim = number | string;

/** Attribute values are tagged, because a JS number alone cannot say int or float. */
export type Attr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] };

const ELEM: Record<ElemType, onnx.TensorProto.DataType> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
};

/**
 * ORT refuses a model whose irVersion is older than its opsets need (and newer schemas than it
 * knows). The pairs are from the ONNX versioning table; see docs engine-facts.
 */
export function irVersionForOpset(opset: number): number {
  if (opset >= 23) return 11;
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 13) return 7;
  throw new EngineError(`ONNX opset ${opset} is older than this builder supports (13+)`);
}

interface Init {
  name: string;
  type: ElemType;
  dims: number[];
  data: TensorData | (() => TensorData);
}

function bytesOf(data: TensorData): Uint8Array {
  // Both element types are little-endian on every platform ORT ships for.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, a: Attr): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  if ('s' in a) return { name, type: T.STRING, s: new TextEncoder().encode(a.s) };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  return { name, type: T.FLOATS, floats: a.floats };
}

export class OnnxGraph {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inits: Init[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private counter = 0;

  /** `opsets[0]` is the default domain; others (e.g. `com.microsoft`) as needed. */
  constructor(
    readonly name: string,
    readonly opset: number,
    private readonly extraOpsets: { domain: string; version: number }[] = [],
  ) {}

  /** A value name not used before, for intermediate results. */
  fresh(prefix: string): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`;
    while (this.used.has(n));
    this.used.add(n);
    return n;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX graph: value name ${name} used twice`);
    this.used.add(name);
    return name;
  }

  /** Whether a value of this name exists (an input, an initializer or a node output). */
  has(name: string): boolean {
    return this.used.has(name);
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), type, dims));
    return name;
  }

  /** Declares an existing value as a graph output (ORT returns only graph outputs). */
  output(name: string, type: ElemType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  initializer(name: string, type: ElemType, dims: number[], data: TensorData | (() => TensorData)): string {
    this.inits.push({ name: this.claim(name), type, dims, data });
    return name;
  }

  constF32(values: number[] | Float32Array, dims: number[] = [values.length]): string {
    const name = this.fresh('const');
    this.inits.push({ name, type: 'float', dims, data: Float32Array.from(values) });
    return name;
  }

  constI64(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('const');
    this.inits.push({ name, type: 'int64', dims, data: BigInt64Array.from(values, BigInt) });
    return name;
  }

  /**
   * Adds a node and returns its output names. `outputs` may name them (graph outputs need fixed
   * names) or give a count of fresh ones.
   */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    opts: { outputs?: number | string[]; domain?: string } = {},
  ): string[] {
    const outs =
      typeof opts.outputs === 'object'
        ? opts.outputs.map((o) => this.claim(o))
        : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(op.toLowerCase()));
    this.nodes.push({
      opType: op,
      domain: opts.domain ?? '',
      name: `${op}_${this.nodes.length}`,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** `node` for the common single-output case. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, out?: string, domain?: string): string {
    return this.node(op, inputs, attrs, { outputs: out === undefined ? 1 : [out], domain })[0]!;
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  get initializerNames(): string[] {
    return this.inits.map((i) => i.name);
  }

  /** Bytes of all initializers, computed from their shapes (no data is read). */
  weightBytes(): number {
    let total = 0;
    for (const i of this.inits) total += i.dims.reduce((a, b) => a * b, 1) * (i.type === 'float' ? 4 : 8);
    return total;
  }

  /** Opset types used, for tests and diagnostics. */
  opTypes(): string[] {
    return this.nodes.map((n) => n.opType ?? '');
  }

  private model(initializers: onnx.ITensorProto[]): onnx.IModelProto {
    return {
      irVersion: irVersionForOpset(this.opset),
      producerName: 'universal-neurons',
      opsetImport: [{ domain: '', version: this.opset }, ...this.extraOpsets],
      graph: { name: this.name, node: this.nodes, initializer: initializers, input: this.inputs, output: this.outputs },
    };
  }

  private static materialize(i: Init): TensorData {
    const data = typeof i.data === 'function' ? i.data() : i.data;
    const n = i.dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`ONNX graph: initializer ${i.name} has ${data.length} values for dims [${i.dims}]`);
    return data;
  }

  /** The whole model in one buffer, weights embedded (protobuf caps this near 2 GB). */
  toBytes(): Uint8Array {
    const inits = this.inits.map((i) => ({
      name: i.name,
      dataType: ELEM[i.type],
      dims: i.dims,
      rawData: bytesOf(OnnxGraph.materialize(i)),
    }));
    return onnx.ModelProto.encode(this.model(inits)).finish();
  }

  /**
   * Writes `model.onnx` plus one weights file into `dir` (ONNX external data), reading and
   * writing one initializer at a time so that the weights never sit in memory twice. Returns the
   * model path; ORT resolves the weights file relative to it. Offsets are 4 KiB aligned so ORT
   * may map them.
   */
  writeExternal(dir: string, weightsFile = 'weights.bin'): string {
    try {
      return this.writeExternalFiles(dir, weightsFile);
    } catch (e) {
      if (e instanceof EngineError || typeof (e as NodeJS.ErrnoException).code !== 'string') throw e;
      // A file-system failure (a full temp disk is the likely one: this is the model's size).
      throw new EngineError(
        `cannot write the ONNX model's weights to ${dir}: ${ioReason(e)} (this folder is the OS temp folder unless cacheDir is set; TMPDIR moves it)`,
        dir,
      );
    }
  }

  private writeExternalFiles(dir: string, weightsFile: string): string {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(join(dir, weightsFile), 'w');
    const inits: onnx.ITensorProto[] = [];
    let offset = 0;
    try {
      for (const i of this.inits) {
        const bytes = bytesOf(OnnxGraph.materialize(i));
        // Shape-like constants stay inline: ORT's shape inference cannot read external data.
        if (bytes.length < 1024) {
          inits.push({ name: i.name, dataType: ELEM[i.type], dims: i.dims, rawData: bytes });
          continue;
        }
        const pad = (4096 - (offset % 4096)) % 4096;
        if (pad) writeSync(fd, new Uint8Array(pad));
        offset += pad;
        // writeSync may write less than asked for large buffers.
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
        inits.push({
          name: i.name,
          dataType: ELEM[i.type],
          dims: i.dims,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [
            { key: 'location', value: weightsFile },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(bytes.length) },
          ],
        });
        offset += bytes.length;
      }
    } finally {
      closeSync(fd);
    }
    const path = join(dir, 'model.onnx');
    const fdm = openSync(path, 'w');
    try {
      const buf = onnx.ModelProto.encode(this.model(inits)).finish();
      for (let done = 0; done < buf.length; ) done += writeSync(fdm, buf, done, buf.length - done);
    } finally {
      closeSync(fdm);
    }
    return path;
  }
}
