import { readFile } from 'node:fs/promises';
import { MrlError } from '../errors.js';
import type { EmbeddingMatrix } from '../evaluate/embeddings.js';
import { readNpyHeader } from './npy.js';
import { decodeSafetensors, halfToFloat } from './safetensors.js';

/** A 2-D little-endian float `.npy` (`<f4`, `<f8` or `<f2`, C order) as float32. */
function decodeNpyMatrix(bytes: Uint8Array, source: string): EmbeddingMatrix {
  const corrupt = (what: string): MrlError =>
    new MrlError(
      'corrupt-file',
      `${source} is not a readable .npy embedding matrix: ${what}.`,
      'Save it with numpy.save(path, array.astype("float32")).',
    );
  const header = readNpyHeader(bytes);
  if (header === undefined) throw corrupt('bad magic');
  const { descr, shape, dataOffset: start } = header;
  if (header.fortranOrder) throw corrupt('it is in Fortran order');
  const width = descr === '<f4' ? 4 : descr === '<f8' ? 8 : descr === '<f2' ? 2 : undefined;
  if (width === undefined) throw corrupt(`dtype ${String(descr)} is not <f4, <f8 or <f2`);
  if (shape.length !== 2) throw corrupt(`shape (${shape.join(', ')}) is not 2-D [rows, dim]`);
  const [rows, dim] = shape as [number, number];
  if (bytes.length - start !== rows * dim * width)
    throw corrupt(`${bytes.length - start} data bytes for shape (${rows}, ${dim}) (truncated?)`);
  const data = new Float32Array(rows * dim);
  const at = bytes.byteOffset + start;
  const body = new DataView(bytes.buffer, at, rows * dim * width);
  for (let i = 0; i < data.length; i++)
    data[i] =
      width === 4
        ? body.getFloat32(i * 4, true)
        : width === 8
          ? body.getFloat64(i * 8, true)
          : halfToFloat(body.getUint16(i * 2, true));
  return { data, rows, dim };
}

/**
 * Reads an embedding matrix (e.g. a teacher's embeddings for distillation) from `.npy` (float16,
 * 32 or 64) or `.safetensors` (the tensor `tensor`, default `embeddings` or the file's only
 * 2-D float tensor). A row with NaN or an infinite value is refused, named by its index.
 *
 * @example
 * ```ts
 * const teacher = await readEmbeddings('teacher/train.npy'); // { data, rows, dim }
 * ```
 */
export async function readEmbeddings(path: string, options: { tensor?: string } = {}): Promise<EmbeddingMatrix> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new MrlError('missing-file', `cannot read ${path}: ${(cause as Error).message}.`, 'Check the path.', {
      cause,
    });
  }
  let matrix: EmbeddingMatrix;
  if (path.endsWith('.npy')) matrix = decodeNpyMatrix(bytes, path);
  else if (path.endsWith('.safetensors')) {
    const { tensors } = decodeSafetensors(bytes, path);
    const floats = [...tensors].filter(([, t]) => t.dtype === 'F32' && t.shape.length === 2);
    const name =
      options.tensor ?? (tensors.has('embeddings') ? 'embeddings' : floats.length === 1 ? floats[0]![0] : undefined);
    const tensor = name === undefined ? undefined : tensors.get(name);
    if (tensor === undefined || tensor.dtype !== 'F32' || tensor.shape.length !== 2) {
      throw new MrlError(
        'corrupt-file',
        `${path} has no 2-D float tensor '${name ?? 'embeddings'}' (it holds ${[...tensors.keys()].join(', ') || 'nothing'}).`,
        'Name the tensor that holds the embeddings [rows, dim].',
      );
    }
    const [rows, dim] = tensor.shape as [number, number];
    matrix = { data: tensor.data as Float32Array, rows, dim };
  } else {
    throw new MrlError('invalid-argument', `${path}: embeddings must be a .npy or .safetensors file.`);
  }
  for (let i = 0; i < matrix.data.length; i++) {
    if (!Number.isFinite(matrix.data[i]!)) {
      const row = Math.floor(i / matrix.dim);
      throw new MrlError(
        'invalid-argument',
        `${path}: row ${row} holds ${matrix.data[i]} at dim ${i % matrix.dim}.`,
        'Recompute the embeddings of that row, or drop it from the data.',
      );
    }
  }
  return matrix;
}
