export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS, type WasmTrainingKernelOptions } from './wasm/register.js';
export { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from './wasm/native_softmax_ce.js';
export { ADAMW_UPDATE, SGD_UPDATE, type AdamWUpdateAttrs, type SgdUpdateAttrs } from './wasm/optimizer_updates.js';
