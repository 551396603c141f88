import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { LastError, RLockService, WithRemoteLock } from '../../../lib';
import { Resource } from '../resources/resource.entity';
import { SAMPLE_CONFIG } from '../sample.config';
import { AuditRun } from './audit-run.entity';

const LOCK_NAME = 'cron:resource-audit';

/**
 * Every second, on one instance of the cluster only: counts the ready resources and
 * records the run. `oncePer: '1s'` runs each second (tick) once across the cluster,
 * decided by the database's clock: an instance whose timer fires late, or whose clock is
 * off, finds its tick already run and skips it even though the lock is free again; a
 * tick no instance ran (all down) is skipped, not run late. `maxHoldMs` frees the lock
 * of a run that hangs, and tells the next run (`HoldLimitExceededError`).
 */
@Injectable()
export class ResourceAuditJob {
  private readonly logger = new Logger(ResourceAuditJob.name);

  constructor(
    @InjectRepository(AuditRun) private readonly runs: Repository<AuditRun>,
    @InjectRepository(Resource) private readonly resources: Repository<Resource>,
    private readonly locks: RLockService,
  ) {}

  /** One tick of the job. */
  @Cron(CronExpression.EVERY_SECOND, { disabled: !SAMPLE_CONFIG.auditEnabled })
  @WithRemoteLock(LOCK_NAME, {
    onLocked: 'skip',
    ttlMs: SAMPLE_CONFIG.ttlMs,
    oncePer: '1s',
    maxHoldMs: 10_000,
  })
  async audit(@LastError() previous: Error | null): Promise<void> {
    const lock = this.locks.current()!;
    // The tick this run belongs to, as oncePer recorded it with the lock (database clock).
    const state = await this.locks.inspect(LOCK_NAME);
    const tick = state!.lastTickAt!.getTime();
    if (previous !== null) {
      this.logger.warn(`audit: the previous run left ${previous.name}: ${previous.message}`);
    }
    await this.runs.insert({
      tick,
      instance: SAMPLE_CONFIG.instance,
      fence: lock.fence,
      readyResources: await this.resources.countBy({ status: 'ready' }),
      previousError: previous?.name ?? null,
    });
  }

  /** Every run, oldest first. */
  list(): Promise<AuditRun[]> {
    return this.runs.find({ order: { tick: 'ASC', id: 'ASC' } });
  }
}
