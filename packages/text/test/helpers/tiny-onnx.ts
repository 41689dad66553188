import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initializer, node, ONNX_FLOAT, ONNX_INT64, onnxModel, valueInfo } from '@mrl/core';
import { wordPieceTokenizerFiles, writeTokenizerFiles } from '../../src/tokenizer/tokenizer-json.js';

/**
 * ONNX ModelProto bytes of a "BERT" that is one embedding lookup:
 * `last_hidden_state[b, t, :] = table[input_ids[b, t], :] * attention_mask[b, t]`, opset 13.
 */
export function embeddingOnlyOnnxModel(table: Float32Array, vocabSize: number, hidden: number): Uint8Array {
  const axes = new Uint8Array(new BigInt64Array([-1n]).buffer);
  return onnxModel(
    'tiny-embedding-bert',
    [
      node('Gather', ['embeddings', 'input_ids'], ['gathered'], { axis: 0 }), // [B, T, H]
      node('Cast', ['attention_mask'], ['mask_f'], { to: ONNX_FLOAT }), // [B, T]
      node('Unsqueeze', ['mask_f', 'unsqueeze_axes'], ['mask_3d']), // [B, T, 1]
      node('Mul', ['gathered', 'mask_3d'], ['last_hidden_state']),
      initializer(
        'embeddings',
        [vocabSize, hidden],
        ONNX_FLOAT,
        new Uint8Array(table.buffer, table.byteOffset, table.byteLength),
      ),
      initializer('unsqueeze_axes', [1], ONNX_INT64, axes),
      valueInfo(11, 'input_ids', ONNX_INT64, ['batch', 'sequence']),
      valueInfo(11, 'attention_mask', ONNX_INT64, ['batch', 'sequence']),
      valueInfo(12, 'last_hidden_state', ONNX_FLOAT, ['batch', 'sequence', hidden]),
    ],
    { '': 13 },
  );
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
  for (let v = 0; v < vocab.length; v++)
    for (let j = 0; j < hidden; j++) table[v * hidden + j] = Math.sin(v * (j + 1) * 0.37);
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
