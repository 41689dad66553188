/*
 * A module-resolution hook (node:module `register`) for plug-ins: a plug-in's bare imports of
 * the packages the CLI shares with it resolve to the CLI's own copies. A plug-in is then a plain
 * ES module that needs no install of its own, and there is one TensorFlow.js engine and one set
 * of DI tokens in the process, never two.
 */

interface ResolveContext {
  parentURL?: string;
  conditions?: readonly string[];
  importAttributes?: Record<string, string>;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<{ url: string }>;

const SHARED = ['@tensorflow/tfjs', '@mrl/kernels', '@mrl/core', '@mrl/vision', '@mrl/text', 'inversify'];
let hostURL = '';
let pluginDirs: readonly string[] = [];

/** `hostURL`: a module of the CLI to resolve from; `pluginDirs`: folder URLs of the plug-ins. */
export function initialize(data: { hostURL: string; pluginDirs: readonly string[] }): void {
  hostURL = data.hostURL;
  pluginDirs = data.pluginDirs;
}

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string }> {
  const shared = SHARED.some((name) => specifier === name || specifier.startsWith(`${name}/`));
  const parent = context.parentURL;
  const fromPlugin =
    parent !== undefined && !parent.includes('/node_modules/') && pluginDirs.some((dir) => parent.startsWith(dir));
  if (shared && fromPlugin) return next(specifier, { ...context, parentURL: hostURL });
  return next(specifier, context);
}
