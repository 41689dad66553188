export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS, type WasmTrainingKernelOptions } from './wasm/register.js';
