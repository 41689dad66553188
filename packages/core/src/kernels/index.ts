export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from './wasm/register.js';
