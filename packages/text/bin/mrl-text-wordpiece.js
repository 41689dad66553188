#!/usr/bin/env node
// Committed entry point of the `mrl-text-wordpiece` command: it exists before the build, so
// `pnpm install` links it without a warning; the command itself is compiled to dist/.
await import('../dist/bin/train-wordpiece.js');
