import { register } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  coreModule,
  ENCODER_REGISTRATION,
  MrlError,
  OBJECTIVE_REGISTRATION,
  type EncoderRegistration,
  type Modality,
} from '@mrl/core';
import { visionModule } from '@mrl/vision';
import { Container, type ContainerModule } from 'inversify';

/** What `mrl-cli models` lists for an objective binding (its shape is up to the binder). */
export interface ObjectiveEntry {
  name: string;
  description?: string;
  modality?: Modality;
}

export interface Registry {
  encoders: EncoderRegistration[];
  objectives: ObjectiveEntry[];
  /** Which modules were composed, for messages: `core`, `vision`, `text (pending)`, plug-in paths. */
  modules: string[];
}

function isContainerModule(value: unknown): value is ContainerModule {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { load?: unknown }).load === 'function' &&
    typeof (value as { id?: unknown }).id === 'number'
  );
}

/** A package's ContainerModule when its index exports one under `name` (text and align are being written). */
async function optionalModule(specifier: string, name: string): Promise<ContainerModule | undefined> {
  try {
    const module = (await import(specifier)) as Record<string, unknown>;
    return isContainerModule(module[name]) ? module[name] : undefined;
  } catch {
    return undefined;
  }
}

let resolverRegistered = false;

/** Imports plug-in modules; each must export an inversify ContainerModule (default or named). */
export async function loadPlugins(paths: readonly string[]): Promise<{ path: string; module: ContainerModule }[]> {
  if (paths.length > 0 && !resolverRegistered) {
    register('./plugin-resolver.js', import.meta.url, {
      data: { hostURL: import.meta.url, pluginDirs: paths.map((p) => pathToFileURL(`${dirname(p)}/`).href) },
    });
    resolverRegistered = true;
  }
  const out: { path: string; module: ContainerModule }[] = [];
  for (const path of paths) {
    let exports: Record<string, unknown>;
    try {
      exports = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'ERR_MODULE_NOT_FOUND' && String((cause as Error).message).includes(path)) {
        throw new MrlError(
          'missing-file',
          `the plug-in ${path} does not exist.`,
          'Check the --plugin path (relative paths start from the current folder, or from the config file for "plugins").',
          { cause },
        );
      }
      throw new MrlError(
        'invalid-config',
        `the plug-in ${path} failed to load: ${(cause as Error).message}`,
        'Fix the error in the plug-in module; run with --debug for the stack.',
        { cause },
      );
    }
    const modules = Object.values(exports).filter(isContainerModule);
    const chosen = isContainerModule(exports.default) ? [exports.default] : modules;
    if (chosen.length === 0) {
      throw new MrlError(
        'invalid-config',
        `the plug-in ${path} exports no inversify ContainerModule (exports: ${Object.keys(exports).join(', ') || 'none'}).`,
        "Export one, e.g. `export default new ContainerModule(({ bind }) => bind(Symbol.for('mrl/EncoderRegistration')).toConstantValue({...}))`; see examples/custom-encoder.",
      );
    }
    for (const module of chosen) out.push({ path, module });
  }
  return out;
}

/** Composes core, the modality packages and the plug-ins into one container and reads the registrations. */
export async function buildRegistry(pluginPaths: readonly string[]): Promise<Registry> {
  const container = new Container();
  const modules: string[] = ['core', 'vision'];
  await container.loadAsync(coreModule, visionModule);
  for (const [specifier, name] of [
    ['@mrl/text', 'textModule'],
    ['@mrl/align', 'alignModule'],
  ] as const) {
    const module = await optionalModule(specifier, name);
    if (module !== undefined) {
      await container.loadAsync(module);
      modules.push(specifier.slice('@mrl/'.length));
    }
  }
  for (const plugin of await loadPlugins(pluginPaths)) {
    await container.loadAsync(plugin.module);
    modules.push(plugin.path);
  }
  const getAll = <T>(token: symbol): T[] => (container.isBound(token) ? container.getAll<T>(token) : []);
  const encoders = getAll<EncoderRegistration>(ENCODER_REGISTRATION);
  for (const e of encoders) {
    if (typeof e?.name !== 'string' || typeof e.create !== 'function' || typeof e.defaults !== 'object') {
      throw new MrlError(
        'invalid-config',
        `an encoder registration has no name, defaults or create(): ${JSON.stringify(e)}.`,
        'Bind objects of the EncoderRegistration shape (name, modality, description, defaults, create).',
      );
    }
  }
  return { encoders, objectives: getAll<ObjectiveEntry>(OBJECTIVE_REGISTRATION), modules };
}

/** The registration named `name` for `modality`; an unknown name lists the known ones. */
export function findEncoder(registry: Registry, name: string, modality: string): EncoderRegistration {
  const forModality = registry.encoders.filter((e) => e.modality === modality);
  const found = forModality.find((e) => e.name === name);
  if (found !== undefined) return found;
  const other = registry.encoders.find((e) => e.name === name);
  if (other !== undefined) {
    throw new MrlError(
      'unknown-name',
      `model '${name}' is a ${other.modality} encoder, not ${modality}.`,
      `Use --modality ${other.modality}, or one of: ${forModality.map((e) => e.name).join(', ')}.`,
    );
  }
  throw new MrlError(
    'unknown-name',
    `unknown ${modality} model '${name}'.`,
    `Known ${modality} models: ${forModality.map((e) => e.name).join(', ') || 'none'}; run mrl-cli models to list them, or add one with --plugin.`,
  );
}
