/** The signals that ask a run to stop: Ctrl-C (SIGINT) and a polite kill, systemd or docker stop (SIGTERM). */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Calls `handler` on SIGINT and on SIGTERM alike, so that `kill <pid>` stops a run after its
 * step with a checkpoint just as Ctrl-C does. Returns a function that removes the handlers.
 */
export function onStopSignals(handler: (signal: NodeJS.Signals) => void): () => void {
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, handler);
  };
}
