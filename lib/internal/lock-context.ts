import { AsyncLocalStorage } from 'node:async_hooks';
import type { RemoteLock } from '../remote-lock';

/** What a locked section (withLock or @WithRemoteLock) knows about the locks around it. */
export interface LockScope {
  /** Every lock held by this section and the sections enclosing it, by name. */
  readonly held: ReadonlyMap<string, RemoteLock>;
  /** The innermost lock. */
  readonly current: RemoteLock;
}

/** The scope of the running locked section, if any. */
export const lockContext = new AsyncLocalStorage<LockScope>();

/** Runs `fn` in a new scope that adds `lock` to the enclosing one. */
export function runInLockScope<T>(lock: RemoteLock, fn: () => T): T {
  const parent = lockContext.getStore();
  const held = new Map(parent?.held);
  held.set(lock.name, lock);
  return lockContext.run({ held, current: lock }, fn);
}
