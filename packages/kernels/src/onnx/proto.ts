// Why: the native GEMM (and tests that need an ONNX model) build tiny ONNX graphs in code. A
// full protobuf library with the ONNX schema would be heavier than the few wire types a
// ModelProto needs: varint (0), 32-bit (5) and length-delimited (2). Field numbers are those of
// onnx/onnx.proto.

/** One encoded protobuf field (tag + payload). */
export type ProtoField = Uint8Array;

/** ONNX TensorProto.DataType codes used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT32 = 6;
export const ONNX_INT64 = 7;

function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const intField = (field: number, value: number | bigint): ProtoField =>
  Uint8Array.from([...varint((field << 3) | 0), ...varint(value)]);

export function floatField(field: number, value: number): ProtoField {
  const out = new Uint8Array(5);
  out[0] = (field << 3) | 5;
  new DataView(out.buffer).setFloat32(1, value, true);
  return out;
}

export const bytesField = (field: number, bytes: Uint8Array): ProtoField =>
  concatBytes([Uint8Array.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes]);
export const stringField = (field: number, text: string): ProtoField =>
  bytesField(field, new TextEncoder().encode(text));
export const messageField = (field: number, parts: readonly ProtoField[]): ProtoField =>
  bytesField(field, concatBytes(parts));

/** GraphProto.initializer (5): a TensorProto with dims (1), data_type (2), name (8), raw_data (9, little-endian). */
export function initializer(name: string, dims: readonly number[], type: number, raw: Uint8Array): ProtoField {
  return messageField(5, [
    ...dims.map((d) => intField(1, d)),
    intField(2, type),
    stringField(8, name),
    bytesField(9, raw),
  ]);
}

/**
 * GraphProto.input (11) or .output (12): a tensor of `type` whose dims are symbolic names or
 * sizes; `dims` undefined leaves the rank open.
 */
export function valueInfo(field: 11 | 12, name: string, type: number, dims?: readonly (string | number)[]): ProtoField {
  const shape =
    dims === undefined
      ? []
      : [
          messageField(
            2,
            dims.map((d) => messageField(1, [typeof d === 'string' ? stringField(2, d) : intField(1, d)])),
          ),
        ];
  return messageField(field, [stringField(1, name), messageField(2, [messageField(1, [intField(1, type), ...shape])])]);
}

/**
 * GraphProto.node (1), named after its first output (unique in a graph). Attributes are INT
 * (type 2) for integers, FLOAT (type 1) for other numbers, INTS (type 7) for integer lists.
 */
export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Readonly<Record<string, number | readonly number[]>> = {},
  domain?: string,
): ProtoField {
  const attrs = Object.entries(attributes).map(([name, value]) => {
    if (typeof value !== 'number')
      return messageField(5, [stringField(1, name), intField(20, 7), ...value.map((v) => intField(8, v))]);
    return Number.isInteger(value)
      ? messageField(5, [stringField(1, name), intField(20, 2), intField(3, value)])
      : messageField(5, [stringField(1, name), intField(20, 1), floatField(2, value)]);
  });
  return messageField(1, [
    ...inputs.map((i) => stringField(1, i)),
    ...outputs.map((o) => stringField(2, o)),
    stringField(3, `${opType}_${outputs[0] ?? ''}`),
    stringField(4, opType),
    ...attrs,
    ...(domain === undefined ? [] : [stringField(7, domain)]),
  ]);
}

/** ModelProto bytes (IR version 8) of one graph; `opsets` maps a domain ('' is ONNX's) to its version. */
export function onnxModel(
  graphName: string,
  graph: readonly ProtoField[],
  opsets: Readonly<Record<string, number>>,
): Uint8Array {
  return concatBytes([
    intField(1, 8), // ir_version
    stringField(2, 'mrl'), // producer_name
    messageField(7, [stringField(2, graphName), ...graph]),
    ...Object.entries(opsets).map(([domain, version]) =>
      messageField(8, [stringField(1, domain), intField(2, version)]),
    ),
  ]);
}
