import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { bigintTransformer } from '../bigint.transformer';
import { SAMPLE_CONFIG } from '../sample.config';

/** One run of the cluster-wide audit job. */
@Entity(`${SAMPLE_CONFIG.tablePrefix}audit_runs`)
export class AuditRun {
  @PrimaryGeneratedColumn()
  id!: number;

  /** The scheduled second this run belongs to (ms since the Unix epoch). */
  @Column({ type: 'bigint', transformer: bigintTransformer })
  tick!: number;

  /** The instance that ran it. */
  @Column({ type: 'varchar', length: 100 })
  instance!: string;

  /** Fence of the job's lock for this run. */
  @Column({ type: 'bigint', transformer: bigintTransformer })
  fence!: number;

  /** How many resources were ready. */
  @Column({ type: 'int' })
  readyResources!: number;

  /** The error the previous run left on the lock (`LeaseExpiredError` after a crash), if any. */
  @Column({ type: 'varchar', length: 100, nullable: true })
  previousError!: string | null;
}
