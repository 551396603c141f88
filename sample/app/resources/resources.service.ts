import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { LeaseExpiredError, RLockService, type RemoteLock } from '../../../lib';
import { SAMPLE_CONFIG } from '../sample.config';
import type { CreateOutcome } from './create-outcome.interface';
import { InjectedFailure } from './injected-failure.enum';
import { Resource, type BuildKind } from './resource.entity';
import { FatalError, RecoverableError } from './resource.errors';

/** Creates resources, each once, however many instances are asked at the same time. */
@Injectable()
export class ResourcesService {
  private readonly logger = new Logger(ResourcesService.name);
  private readonly instance = SAMPLE_CONFIG.instance;

  constructor(
    @InjectRepository(Resource) private readonly resources: Repository<Resource>,
    private readonly locks: RLockService,
  ) {}

  /** One resource, or null. */
  find(id: string): Promise<Resource | null> {
    return this.resources.findOneBy({ id });
  }

  /** Every resource, by id. */
  list(): Promise<Resource[]> {
    return this.resources.find({ order: { id: 'ASC' } });
  }

  /**
   * Creates the resource unless it exists. Must run holding the lock `resource:<id>`;
   * `previous` is what the last holder of that lock left behind.
   */
  async createIfMissing(
    id: string,
    previous: Error | null,
    request: { fail?: InjectedFailure; workMs?: number; force?: boolean },
  ): Promise<CreateOutcome> {
    const lock = this.currentLock();
    const lockedAt = Date.now();
    const outcome = (action: CreateOutcome['action'], resource: Resource): CreateOutcome => ({
      action,
      instance: this.instance,
      fence: lock.fence,
      lockedAt,
      previous: describePrevious(previous),
      resource,
    });

    const existing = await this.find(id);
    if (existing?.status === 'ready') return outcome('exists', existing);

    if (previous instanceof FatalError && !request.force) {
      // Passing the error on keeps refusing: the next holder finds it again, until a
      // request with ?force=true builds it anyway (its clean release clears the error).
      this.logger.warn(`${id}: refused, the previous holder failed for good (${previous.message})`);
      throw new FatalError(previous.message, previous.instance, true);
    }

    const workMs = request.workMs ?? SAMPLE_CONFIG.workMs;
    let how: BuildKind = 'created';
    if (previous instanceof RecoverableError) {
      how = 'retried';
      this.logger.log(`${id}: the previous holder failed (${previous.message}); retrying`);
    } else if (previous instanceof LeaseExpiredError && existing?.status === 'building') {
      how = 'repaired';
      this.logger.warn(`${id}: ${existing.startedBy} vanished half-way; repairing its build`);
    }

    if (how !== 'repaired') {
      await this.startBuild(id, existing, lock);
      await sleep(workMs / 2, undefined, { signal: lock.signal });
      if (request.fail === InjectedFailure.Recoverable) {
        throw new RecoverableError(`upstream timed out while building ${id}`, this.instance);
      }
      if (request.fail === InjectedFailure.Fatal) {
        throw new FatalError(`${id} cannot be built: invalid specification`, this.instance);
      }
    }
    // A repair picks up where the vanished holder stopped: the second half of the work.
    await sleep(workMs / 2, undefined, { signal: lock.signal });
    return outcome(how, await this.finishBuild(id, how, lock));
  }

  private async startBuild(id: string, existing: Resource | null, lock: RemoteLock) {
    if (existing === null) {
      await this.resources.insert({
        id,
        status: 'building',
        attempts: 1,
        builds: 0,
        startedBy: this.instance,
        fence: lock.fence,
      });
      return;
    }
    await this.writeFenced(id, lock, {
      status: 'building',
      attempts: existing.attempts + 1,
      startedBy: this.instance,
    });
  }

  private async finishBuild(id: string, how: BuildKind, lock: RemoteLock): Promise<Resource> {
    const current = await this.resources.findOneByOrFail({ id });
    await this.writeFenced(id, lock, {
      status: 'ready',
      builds: current.builds + 1,
      builtBy: this.instance,
      builtHow: how,
      readyAt: Date.now(),
    });
    return this.resources.findOneByOrFail({ id });
  }

  /** Writes only if no holder with a larger fence has written since (fencing, see the README). */
  private async writeFenced(id: string, lock: RemoteLock, changes: Partial<Resource>) {
    const result = await this.resources
      .createQueryBuilder()
      .update()
      .set({ ...changes, fence: lock.fence })
      .where('id = :id AND fence <= :fence', { id, fence: lock.fence })
      .execute();
    if (result.affected === 0) {
      throw new RecoverableError(`${id}: a newer lock holder has written it`, this.instance);
    }
  }

  private currentLock(): RemoteLock {
    const lock = this.locks.current();
    if (lock === null) throw new Error('createIfMissing() must run holding the resource lock');
    return lock;
  }
}

function describePrevious(error: Error | null): CreateOutcome['previous'] {
  if (error === null) return null;
  const holder = error instanceof LeaseExpiredError ? error.holder : undefined;
  return { name: error.name, message: error.message, ...(holder === undefined ? {} : { holder }) };
}
