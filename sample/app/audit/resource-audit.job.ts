import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { LastError, RLockService, WithRemoteLock } from '../../../lib';
import { Resource } from '../resources/resource.entity';
import { SAMPLE_CONFIG } from '../sample.config';
import { AuditRun } from './audit-run.entity';

const PERIOD_MS = 1_000;

/**
 * Every second, on one instance of the cluster only: counts the ready resources and
 * records the run. The other instances find the lock taken and skip the tick.
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
  @WithRemoteLock('cron:resource-audit', { onLocked: 'skip', ttlMs: SAMPLE_CONFIG.ttlMs })
  async audit(@LastError() previous: Error | null): Promise<void> {
    const lock = this.locks.current()!;
    // The tick is read holding the lock: each holder releases no earlier than half a
    // period after its tick (below), so the next holder's tick is always a later one.
    const tick = Math.round(Date.now() / PERIOD_MS) * PERIOD_MS;
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
    // Hold the lock for at least half a period ("lock at least for"): an instance whose
    // timer fires a little late must find the lock taken, not run the same tick again.
    const holdMs = tick + PERIOD_MS / 2 - Date.now();
    if (holdMs > 0) await sleep(holdMs);
  }

  /** Every run, oldest first. */
  list(): Promise<AuditRun[]> {
    return this.runs.find({ order: { tick: 'ASC', id: 'ASC' } });
  }
}
