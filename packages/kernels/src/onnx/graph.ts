// Why onnx-proto: exported models are whole graphs with metadata, read by onnxruntime, the
// `onnx` checker and transformers.js; messages built from the ONNX schema's generated code
// (onnx-proto, protobufjs) cannot drift from the spec the way hand-written field numbers can.
// proto.ts stays for the few-node graphs the native kernels build at start-up.
import onnxProto from 'onnx-proto';
import { MrlError } from '../errors.js';

const { onnx } = onnxProto;

/** The ONNX opset mrl's exported graphs use (LayerNormalization needs 17). */
export const EXPORT_OPSET = 17;

export type OnnxElementType = 'float32' | 'int64';

const ELEMENT: Record<OnnxElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
};

type Attribute = number | readonly number[] | string;

/**
 * Builds an ONNX graph node by node. Each `op` call names its output after the op and a
 * counter unless told otherwise, so graph code reads as a chain of calls.
 *
 * @example
 * ```ts
 * const g = new OnnxGraph('mlp');
 * const x = g.input('x', 'float32', ['batch', 4]);
 * const w = g.initializer('w', new Float32Array(8), [4, 2]);
 * g.output(g.op('MatMul', [x, w]), 'y', 'float32', ['batch', 2]);
 * const bytes = g.encode({ 'mrl.nesting_dims': '[1,2]' });
 * ```
 */
export class OnnxGraph {
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #names = new Set<string>();
  #counter = 0;

  constructor(readonly name: string) {}

  #claim(name: string): string {
    if (this.#names.has(name))
      throw new MrlError('invalid-argument', `ONNX graph '${this.name}' already has a value named '${name}'.`);
    this.#names.add(name);
    return name;
  }

  /** A graph input; `dims` are sizes or symbolic names ('batch', 'sequence'). */
  input(name: string, type: OnnxElementType, dims: readonly (number | string)[]): string {
    this.#inputs.push(valueInfo(this.#claim(name), type, dims));
    return name;
  }

  /** Renames `value` to `name` (an Identity node) and makes it a graph output. */
  output(value: string, name: string, type: OnnxElementType, dims: readonly (number | string)[]): string {
    this.op('Identity', [value], {}, name);
    this.#outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant tensor stored in the graph (little-endian raw data). */
  initializer(name: string, data: Float32Array | BigInt64Array, dims: readonly number[]): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new MrlError(
        'invalid-argument',
        `ONNX initializer '${name}' has shape [${dims.join(', ')}] but ${data.length} values.`,
      );
    }
    this.#initializers.push({
      name: this.#claim(name),
      dims: [...dims],
      dataType: data instanceof Float32Array ? ELEMENT.float32 : ELEMENT.int64,
      rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
    });
    return name;
  }

  /** An int64 constant (shapes, axes). */
  ints(values: readonly number[], name?: string): string {
    return this.initializer(name ?? `const_${this.#counter++}`, BigInt64Array.from(values.map(BigInt)), [
      values.length,
    ]);
  }

  /** A float scalar constant. */
  scalar(value: number, name?: string): string {
    return this.initializer(name ?? `const_${this.#counter++}`, Float32Array.of(value), []);
  }

  /**
   * One node; returns its output's name. Attributes: integers become INT, other numbers FLOAT,
   * lists INTS, strings STRING.
   */
  op(
    type: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, Attribute>> = {},
    output?: string,
  ): string {
    const out = this.#claim(output ?? `${type.toLowerCase()}_${this.#counter++}`);
    this.#nodes.push({
      opType: type,
      name: `${type}_${out}`,
      input: [...inputs],
      output: [out],
      attribute: Object.entries(attributes).map(([name, value]) =>
        typeof value === 'string'
          ? { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(value) }
          : typeof value !== 'number'
            ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...value] }
            : Number.isInteger(value)
              ? { name, type: onnx.AttributeProto.AttributeType.INT, i: value }
              : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value },
      ),
    });
    return out;
  }

  /** ModelProto bytes (IR version 8, ONNX opset {@link EXPORT_OPSET}) with `metadata` as metadata_props. */
  encode(metadata: Readonly<Record<string, string>> = {}, docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'mrl',
      producerVersion: '0.1.0',
      docString,
      opsetImport: [{ domain: '', version: EXPORT_OPSET }],
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(
  name: string,
  type: OnnxElementType,
  dims: readonly (number | string)[],
): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Metadata props and opset of ONNX bytes, decoded with the same schema (for tests and `mrl-cli export`). */
export function readOnnxMetadata(bytes: Uint8Array): { opset: number; metadata: Record<string, string> } {
  const model = onnx.ModelProto.decode(bytes);
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps) metadata[p.key ?? ''] = p.value ?? '';
  const opset = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version;
  return { opset: Number(opset ?? 0), metadata };
}
