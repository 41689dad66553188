import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { wordPieceTokenizerFiles, writeTokenizerFiles } from '../../src/tokenizer/tokenizer-json.js';

// A tiny hand-written protobuf writer: just the wire types an ONNX ModelProto needs (varint = 0,
// length-delimited = 2). Field numbers are those of onnx/onnx.proto (IR version 8).

type Field = Uint8Array;

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

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const intField = (field: number, value: number | bigint): Field => Uint8Array.from([...varint((field << 3) | 0), ...varint(value)]);
const bytesField = (field: number, bytes: Uint8Array): Field => concat([Uint8Array.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes]);
const stringField = (field: number, text: string): Field => bytesField(field, new TextEncoder().encode(text));
const message = (field: number, parts: readonly Field[]): Field => bytesField(field, concat(parts));

const FLOAT = 1;
const INT64 = 7;

/** TensorProto: dims (1), data_type (2), name (8), raw_data (9, little-endian). */
function tensor(field: number, name: string, dims: readonly number[], type: number, raw: Uint8Array): Field {
  return message(field, [...dims.map((d) => intField(1, d)), intField(2, type), stringField(8, name), bytesField(9, raw)]);
}

/** ValueInfoProto with a tensor type whose dims are symbolic names or sizes. */
function valueInfo(field: number, name: string, type: number, dims: readonly (string | number)[]): Field {
  const shape = dims.map((d) => message(1, [typeof d === 'string' ? stringField(2, d) : intField(1, d)]));
  return message(field, [stringField(1, name), message(2, [message(1, [intField(1, type), message(2, shape)])])]);
}

/** NodeProto: input (1), output (2), name (3), op_type (4), attribute (5) of type INT (20 = 2). */
function node(opType: string, inputs: readonly string[], outputs: readonly string[], intAttributes: Record<string, number> = {}): Field {
  const attributes = Object.entries(intAttributes).map(([name, value]) => message(5, [stringField(1, name), intField(20, 2), intField(3, value)]));
  return message(1, [...inputs.map((i) => stringField(1, i)), ...outputs.map((o) => stringField(2, o)), stringField(3, `${opType}_0`), stringField(4, opType), ...attributes]);
}

/**
 * ONNX ModelProto bytes of a "BERT" that is one embedding lookup:
 * `last_hidden_state[b, t, :] = table[input_ids[b, t], :] * attention_mask[b, t]`, opset 13.
 */
export function embeddingOnlyOnnxModel(table: Float32Array, vocabSize: number, hidden: number): Uint8Array {
  const axes = new Uint8Array(new BigInt64Array([-1n]).buffer);
  const graph = [
    node('Gather', ['embeddings', 'input_ids'], ['gathered'], { axis: 0 }), // [B, T, H]
    node('Cast', ['attention_mask'], ['mask_f'], { to: FLOAT }), // [B, T]
    node('Unsqueeze', ['mask_f', 'unsqueeze_axes'], ['mask_3d']), // [B, T, 1]
    node('Mul', ['gathered', 'mask_3d'], ['last_hidden_state']),
    stringField(2, 'tiny-embedding-bert'),
    tensor(5, 'embeddings', [vocabSize, hidden], FLOAT, new Uint8Array(table.buffer, table.byteOffset, table.byteLength)),
    tensor(5, 'unsqueeze_axes', [1], INT64, axes),
    valueInfo(11, 'input_ids', INT64, ['batch', 'sequence']),
    valueInfo(11, 'attention_mask', INT64, ['batch', 'sequence']),
    valueInfo(12, 'last_hidden_state', FLOAT, ['batch', 'sequence', hidden]),
  ];
  return concat([
    intField(1, 8), // ir_version
    stringField(2, 'mrl-test'), // producer_name
    message(7, graph), // graph
    message(8, [stringField(1, ''), intField(2, 13)]), // opset_import: default domain, opset 13
  ]);
}

export interface TinyOnnxModel {
  dir: string;
  vocab: string[];
  hidden: number;
  /** [V * H] row-major embedding table baked into the model. */
  table: Float32Array;
}

/**
 * Writes a transformers.js model folder: `config.json` (model_type bert), the WordPiece
 * tokenizer files and `onnx/model.onnx` (the embedding-only graph above, fp32).
 */
export async function writeTinyOnnxModel(dir: string, words: readonly string[], hidden = 8): Promise<TinyOnnxModel> {
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words];
  const table = new Float32Array(vocab.length * hidden);
  // Deterministic, distinct rows: row v is sin(v * (j + 1) * 0.37).
  for (let v = 0; v < vocab.length; v++) for (let j = 0; j < hidden; j++) table[v * hidden + j] = Math.sin(v * (j + 1) * 0.37);
  await writeTokenizerFiles(dir, wordPieceTokenizerFiles(vocab));
  const config = {
    model_type: 'bert',
    architectures: ['BertModel'],
    vocab_size: vocab.length,
    hidden_size: hidden,
    num_hidden_layers: 0,
    num_attention_heads: 1,
    max_position_embeddings: 64,
  };
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await mkdir(join(dir, 'onnx'), { recursive: true });
  await writeFile(join(dir, 'onnx', 'model.onnx'), embeddingOnlyOnnxModel(table, vocab.length, hidden));
  return { dir, vocab, hidden, table };
}
