// Why: the native scan is a three-node ONNX graph built in code. A protobuf library with the
// ONNX schema would be far heavier than the three wire types a ModelProto needs: varint (0),
// 32-bit (5, unused here) and length-delimited (2). Field numbers are those of onnx/onnx.proto.

/** ONNX TensorProto.DataType codes used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const intField = (field: number, value: number): Uint8Array =>
  Uint8Array.from([...varint(field << 3), ...varint(value)]);
const bytesField = (field: number, bytes: Uint8Array): Uint8Array =>
  concat([Uint8Array.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes]);
const stringField = (field: number, text: string): Uint8Array => bytesField(field, new TextEncoder().encode(text));
const messageField = (field: number, parts: readonly Uint8Array[]): Uint8Array => bytesField(field, concat(parts));

/** GraphProto.input (11) or .output (12): a tensor whose dims are symbolic names or sizes. */
export function valueInfo(field: 11 | 12, name: string, type: number, dims: readonly (string | number)[]): Uint8Array {
  const shape = messageField(
    2,
    dims.map((d) => messageField(1, [typeof d === 'string' ? stringField(2, d) : intField(1, d)])),
  );
  return messageField(field, [stringField(1, name), messageField(2, [messageField(1, [intField(1, type), shape])])]);
}

/** GraphProto.node (1) with INT attributes (non-negative integers only), named after its first output. */
export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Readonly<Record<string, number>> = {},
  domain?: string,
): Uint8Array {
  const attrs = Object.entries(attributes).map(([name, value]) =>
    messageField(5, [stringField(1, name), intField(20, 2), intField(3, value)]),
  );
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
  graph: readonly Uint8Array[],
  opsets: Readonly<Record<string, number>>,
): Uint8Array {
  return concat([
    intField(1, 8), // ir_version
    stringField(2, 'mrl'), // producer_name
    messageField(7, [stringField(2, graphName), ...graph]),
    ...Object.entries(opsets).map(([domain, version]) =>
      messageField(8, [stringField(1, domain), intField(2, version)]),
    ),
  ]);
}
