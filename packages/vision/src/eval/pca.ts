// PCA moved to @mrl/core (text and align baselines use it too); re-exported here for existing imports.
export { fitPca, projectPca, symmetricEigen, type Pca } from '@mrl/core';
