// The tolerance helpers are shared with @mrl/kernels' tests, where the kernels they check live.
export * from '../../../kernels/test/helpers/close.js';
