import type { RunTable } from './evaluate/run-table.js';
import type { TrainEvent } from './trainer.js';

/**
 * What every `fit` entry point (vision, text, align, a plug-in) receives from the CLI or from
 * user code, besides its own modality-specific settings.
 */
export interface RunContext {
  /** Folder for config, checkpoints, metrics and the final model; created when missing. */
  runDir: string;
  seed: number;
  /** Continue from the newest checkpoint in the run folder. */
  resume: boolean;
  /** Continue from the checkpoint of this step (implies resume); newer checkpoints are set aside. */
  fromCheckpoint?: number;
  /** Checkpoints kept per model (default 3): the roll-back window after divergence. */
  keepCheckpoints?: number;
  signal?: AbortSignal;
  /** Training progress; `label` says which model of the run (e.g. `mrl`, `ff-16`) is training. */
  onEvent?: (event: TrainEvent, label: string) => void;
  /** One human-readable line (backend chosen, data loaded, ...). */
  log: (line: string) => void;
  /**
   * The models this run will train, in order (e.g. `['mrl', 'ff-8', 'ff-16']`), told once before
   * the first one starts, so that progress can show one ETA for the whole run.
   */
  onPlan?: (labels: readonly string[]) => void;
}

/** The result of a run: the per-dim table as text, and the same numbers as JSON. */
export interface RunReport {
  title: string;
  table: string;
  metrics: Record<string, unknown>;
  /** The per-dim table as data; the CLI prints it with `formatRunTable` and keeps it in metrics.json. */
  runTable?: RunTable;
}
