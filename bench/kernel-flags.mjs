// What runs the native kernels in the training benches: --no-nchwc, --convolution, --matmul,
// --chunked-head, --few-class-head, --batch-norm, --sgd, --ort-threads.
import { loadOnnxRuntimeKernels, registerWasmTrainingKernels } from '@mrl/core';
import { arg } from './args.mjs';

/**
 * Registers the native kernels the flags ask for, on `threads` threads, and names them in
 * `backend.detail`; without any of the flags the backend keeps its defaults (oneDNN for
 * convolutions and products where the addon is built, else ONNX Runtime).
 * --no-nchwc: every convolution on ONNX's Conv (im2col + SGEMM), none on MLAS's NCHWc kernels nor
 * oneDNN; --convolution onednn|onnxruntime; --matmul onednn|onnxruntime; --chunked-head
 * onednn|onnxruntime (the chunked Matryoshka MLM head; by default it follows the products);
 * --few-class-head onednn|onnxruntime (the Matryoshka head of at most 128 classes: the addon's one
 * call, or a product and a softmax per nesting dim on ONNX Runtime);
 * --batch-norm onednn|wasm (the oneDNN addon's threaded batch norm, or the wasm SIMD kernels on
 * one thread); --sgd onednn|wasm (the SGD-momentum and AdamW updates, likewise); --ort-threads N (threads of
 * ONNX Runtime's own sessions, default the same as the rest).
 */
export function applyKernelFlags(backend, threads) {
  const noNchwc = process.argv.includes('--no-nchwc');
  const convolution = arg('convolution', undefined);
  const matmul = arg('matmul', undefined);
  const chunkedHead = arg('chunked-head', undefined);
  const fewClassHead = arg('few-class-head', undefined);
  const batchNorm = arg('batch-norm', undefined);
  const sgd = arg('sgd', undefined);
  const ortThreads = arg('ort-threads', undefined);
  if (
    !noNchwc &&
    [convolution, matmul, chunkedHead, fewClassHead, batchNorm, sgd, ortThreads].every((f) => f === undefined)
  )
    return;
  const native = loadOnnxRuntimeKernels({
    threads,
    nchwc: !noNchwc,
    convolution: noNchwc ? 'onnxruntime' : convolution,
    ...(matmul === undefined ? {} : { matmul }),
    ...(chunkedHead === undefined ? {} : { chunkedHead }),
    ...(fewClassHead === undefined ? {} : { fewClassHead }),
    ...(batchNorm === undefined ? {} : { batchNorm }),
    ...(sgd === undefined ? {} : { sgd }),
    ...(ortThreads === undefined ? {} : { onnxRuntimeThreads: Number(ortThreads) }),
  });
  if (native === undefined)
    throw new Error(
      '--no-nchwc, --convolution, --matmul, --chunked-head, --few-class-head, --batch-norm, --sgd and --ort-threads need onnxruntime-node',
    );
  registerWasmTrainingKernels({ native });
  backend.detail = backend.detail.replace(/on ONNX Runtime .*$/, `on ${native.detail}`);
}
