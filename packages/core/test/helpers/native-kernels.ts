// Shared with @mrl/kernels' tests, where the native kernels live.
export * from '../../../kernels/test/helpers/native-kernels.js';
