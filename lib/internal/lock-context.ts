import { AsyncLocalStorage } from 'node:async_hooks';
import type { RemoteLock } from '../remote-lock';

/** What a locked section (withLock or @WithRemoteLock) knows about the locks around it. */
export interface LockScope {
  /** Every lock held by this section and the sections enclosing it, by name (the innermost wins). */
  readonly held: { get(name: string): RemoteLock | undefined };
  /** The innermost lock. */
  readonly current: RemoteLock;
}

/** A section's scope, linked to the enclosing one: entering one copies nothing. */
class Scope implements LockScope {
  constructor(
    readonly current: RemoteLock,
    private readonly parent: Scope | undefined,
  ) {}

  get held(): Scope {
    return this;
  }

  /** The innermost lock named `name` of this section and the enclosing ones. */
  get(name: string): RemoteLock | undefined {
    if (this.current.name === name) return this.current;
    return this.parent?.get(name);
  }
}

/** The scope of the running locked section, if any. */
export const lockContext = new AsyncLocalStorage<LockScope>();

/** Runs `fn` in a new scope that adds `lock` to the enclosing one. */
export function runInLockScope<T>(lock: RemoteLock, fn: () => T): T {
  return lockContext.run(new Scope(lock, lockContext.getStore() as Scope | undefined), fn);
}
