import { Column, Entity, PrimaryColumn } from 'typeorm';
import { bigintTransformer } from '../bigint.transformer';
import { SAMPLE_CONFIG } from '../sample.config';

/** How a resource's build was done. */
export type BuildKind = 'created' | 'retried' | 'repaired';

/**
 * An expensive resource, shared by every instance through the database. A row in status
 * `building` is a half-built resource: whoever built it crashed or failed.
 */
@Entity(`${SAMPLE_CONFIG.tablePrefix}resources`)
export class Resource {
  @PrimaryColumn({ type: 'varchar', length: 100 })
  id!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: 'building' | 'ready';

  /** Builds started (a failed or crashed build counts). */
  @Column({ type: 'int', default: 0 })
  attempts!: number;

  /** Builds completed: exactly 1 for a resource that was created once. */
  @Column({ type: 'int', default: 0 })
  builds!: number;

  /** The instance that started the current build. */
  @Column({ type: 'varchar', length: 100 })
  startedBy!: string;

  /** The instance that completed it. */
  @Column({ type: 'varchar', length: 100, nullable: true })
  builtBy!: string | null;

  /** How it was completed. */
  @Column({ type: 'varchar', length: 16, nullable: true })
  builtHow!: BuildKind | null;

  /** Fence of the lock under which it was last written: a smaller fence may not write. */
  @Column({ type: 'bigint', transformer: bigintTransformer })
  fence!: number;

  /** When it became ready (ms since the Unix epoch). */
  @Column({ type: 'bigint', nullable: true, transformer: bigintTransformer })
  readyAt!: number | null;
}
