// The error class lives in @mrl/kernels, the package below core, so that the kernels and the
// backends throw the same class as the training library; core's modules import it from here.
export { MrlError, type MrlErrorKind } from '@mrl/kernels/errors';
