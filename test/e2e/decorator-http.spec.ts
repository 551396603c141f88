import {
  Body,
  Catch,
  Controller,
  HttpException,
  HttpStatus,
  Param,
  Post,
  type ArgumentsHost,
  type INestApplication,
} from '@nestjs/common';
import { APP_FILTER, BaseExceptionFilter } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { defer, finalize, map, timer, type Observable } from 'rxjs';
import request from 'supertest';
import {
  LastError,
  LockConflictException,
  RLockModule,
  RLockService,
  WithRemoteLock,
} from '../../lib';
import { MESSAGES } from '../../lib/rlock.messages';
import { testDatabases, uniqueTableName } from '../support/databases';

class RecoverableError extends Error {
  override name = 'RecoverableError';
}

interface CreateBody {
  ms?: number;
  /** Stay in the section until this many sections run at once (at most 10 s). */
  together?: number;
  fail?: 'recoverable' | 'http';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts sections running at once, per resource id and overall. */
class Overlap {
  private readonly running = new Map<string, number>();
  private total = 0;
  readonly maxPerId = new Map<string, number>();
  maxTotal = 0;

  enter(id: string): void {
    const now = (this.running.get(id) ?? 0) + 1;
    this.running.set(id, now);
    this.maxPerId.set(id, Math.max(this.maxPerId.get(id) ?? 0, now));
    this.total++;
    this.maxTotal = Math.max(this.maxTotal, this.total);
  }

  leave(id: string): void {
    this.running.set(id, this.running.get(id)! - 1);
    this.total--;
  }

  /**
   * Resolves once `count` sections have run at once since `maxTotal` was reset (a barrier:
   * the last one in may already have left when the others look), or after `timeoutMs`.
   */
  async until(count: number, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.maxTotal < count && performance.now() < deadline) await sleep(5);
  }
}

const overlap = new Overlap();
const filtered: HttpException[] = [];

/** Records what reaches exception filters, then answers as Nest's default filter does. */
@Catch(HttpException)
class RecordingFilter extends BaseExceptionFilter {
  override catch(exception: HttpException, host: ArgumentsHost): void {
    filtered.push(exception);
    super.catch(exception, host);
  }
}

@Controller('resources')
class ResourceController {
  @Post(':id')
  @WithRemoteLock((id: string) => `resource:${id}`, 20_000)
  async create(
    @Param('id') id: string,
    @Body() body: CreateBody,
    @LastError() lastError: Error | null,
  ) {
    overlap.enter(id);
    try {
      await (body.together === undefined ? sleep(body.ms ?? 0) : overlap.until(body.together));
    } finally {
      overlap.leave(id);
    }
    if (body.fail === 'recoverable') throw new RecoverableError(`could not create ${id}`);
    if (body.fail === 'http') throw new HttpException('I am a teapot', HttpStatus.I_AM_A_TEAPOT);
    return {
      id,
      lastError:
        lastError === null
          ? null
          : {
              name: lastError.name,
              message: lastError.message,
              recoverable: lastError instanceof RecoverableError,
            },
    };
  }

  @Post(':id/stream')
  @WithRemoteLock((id: string) => `resource:${id}`, 20_000)
  stream(@Param('id') id: string): Observable<string> {
    return defer(() => {
      overlap.enter(id);
      return timer(80).pipe(
        map(() => id),
        finalize(() => overlap.leave(id)),
      );
    });
  }

  @Post(':id/quick')
  @WithRemoteLock((id: string) => `resource:${id}`, 300)
  quick(@Param('id') id: string): string {
    return id;
  }
}

describe.each(testDatabases())('@WithRemoteLock in an HTTP app on $label', (db) => {
  let app: INestApplication;
  let service: RLockService;

  beforeAll(async () => {
    const module = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...db.options(), synchronize: true, autoLoadEntities: true }),
        RLockModule.forRoot({
          tableName: uniqueTableName('rlock_http'),
          errors: [RecoverableError],
        }),
      ],
      controllers: [ResourceController],
      providers: [{ provide: APP_FILTER, useClass: RecordingFilter }],
    }).compile();
    app = module.createNestApplication({ logger: false });
    await app.init();
    service = app.get(RLockService);
  });
  afterAll(() => app.close());

  const post = (path: string, body: CreateBody = {}) =>
    request(app.getHttpServer()).post(path).send(body);

  it('serializes concurrent requests for one id and runs different ids in parallel', async () => {
    const same = await Promise.all(
      Array.from({ length: 5 }, () => post(`/resources/same-${db.kind}`, { ms: 60 })),
    );
    expect(same.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(overlap.maxPerId.get(`same-${db.kind}`)).toBe(1);

    // Each section stays until all four run at once: locks of different ids do not wait for
    // one another, however slowly the requests arrive (a fixed sleep could end first).
    overlap.maxTotal = 0;
    const ids = ['a', 'b', 'c', 'd'].map((x) => `${x}-${db.kind}`);
    const different = await Promise.all(
      ids.map((id) => post(`/resources/${id}`, { together: ids.length })),
    );
    expect(different.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    for (const id of ids) expect(overlap.maxPerId.get(id)).toBe(1);
    expect(overlap.maxTotal).toBe(ids.length);
  });

  it('holds the lock of an Observable handler until it completes', async () => {
    const id = `stream-${db.kind}`;
    const responses = await Promise.all(
      Array.from({ length: 4 }, () => post(`/resources/${id}/stream`)),
    );
    expect(responses.map((r) => [r.status, r.text])).toEqual(Array(4).fill([201, id]));
    expect(overlap.maxPerId.get(id)).toBe(1);
    expect((await service.inspect(`resource:${id}`))?.status).toBe('free');
  });

  it("gives @LastError() the previous request's error, rebuilt as its registered class", async () => {
    const id = `fail-${db.kind}`;
    expect((await post(`/resources/${id}`, { fail: 'recoverable' })).status).toBe(500);
    const next = await post(`/resources/${id}`);
    expect(next.status).toBe(201);
    expect(next.body.lastError).toEqual({
      name: 'RecoverableError',
      message: `could not create ${id}`,
      recoverable: true,
    });
    expect((await post(`/resources/${id}`)).body.lastError).toBeNull();
  });

  it('passes an HttpException through unchanged (status, body, exception filter) and stores it', async () => {
    const id = `teapot-${db.kind}`;
    filtered.length = 0;
    const response = await post(`/resources/${id}`, { fail: 'http' });
    expect(response.status).toBe(418);
    expect(response.body).toEqual({ statusCode: 418, message: 'I am a teapot' });
    expect(filtered).toHaveLength(1);
    expect(filtered[0].getStatus()).toBe(418);
    const state = await service.inspect(`resource:${id}`);
    expect(state?.lastOutcome).toBe('error');
    expect(state?.lastError?.message).toBe('I am a teapot');
  });

  it('answers 409 Conflict naming the lock when the acquire timeout runs out', async () => {
    const id = `busy-${db.kind}`;
    const held = await service.lock(`resource:${id}`, 1000);
    filtered.length = 0;
    const response = await post(`/resources/${id}/quick`);
    await held.unlock();
    expect(response.status).toBe(409);
    expect(response.body).toEqual({
      statusCode: 409,
      error: 'Conflict',
      message: MESSAGES.acquireTimeout(`resource:${id}`, 300),
      lock: `resource:${id}`,
    });
    expect(filtered[0]).toBeInstanceOf(LockConflictException);
    expect((filtered[0].cause as Error).name).toBe('AcquireTimeoutError');
    expect((await post(`/resources/${id}/quick`)).status).toBe(201);
  });
});
