import type { BuildKind, Resource } from './resource.entity';

/** What `POST /resources/:id` did. */
export interface CreateOutcome {
  /** `exists`: someone else had created it, nothing to do. */
  action: BuildKind | 'exists';
  /** The instance that answered. */
  instance: string;
  /** Fence of the lock this instance held. */
  fence: number;
  /** When this instance got the lock (ms since the Unix epoch). */
  lockedAt: number;
  /** What the previous holder of the lock left: its error, or null. */
  previous: { name: string; message: string; holder?: string | null } | null;
  resource: Resource;
}
