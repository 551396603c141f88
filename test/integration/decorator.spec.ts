import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  firstValueFrom,
  interval,
  isObservable,
  mergeMap,
  Observable,
  Subject,
  take,
  throwError,
  timer,
  toArray,
} from 'rxjs';
import {
  AcquireTimeoutError,
  InvalidArgumentError,
  LastError,
  LockLostError,
  LockReentryError,
  RLockConfigurationError,
  RLockModule,
  RLockService,
  WithRemoteLock,
} from '../../lib';
import { MESSAGES } from '../../lib/rlock.messages';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

class RecoverableError extends Error {
  override name = 'RecoverableError';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class Jobs {
  runs = 0;
  seen: (Error | null | string)[] = [];

  constructor(readonly rlock: RLockService) {}

  @WithRemoteLock((id: string) => `job:${id}`, 2_000)
  async build(id: string, fail: unknown, @LastError() lastError: Error | null = null) {
    this.runs++;
    this.seen.push(lastError);
    const lock = this.rlock.current();
    if (fail !== undefined) throw fail;
    return { id, lock: lock?.name, fence: lock?.fence };
  }

  @WithRemoteLock('skip-me', { onLocked: 'skip' })
  async singleton(): Promise<string> {
    this.runs++;
    return 'ran';
  }

  @WithRemoteLock('skip-me', { onLocked: 'skip', acquireTimeoutMs: 300 })
  async singletonWaiting(): Promise<string> {
    this.runs++;
    return 'ran';
  }

  @WithRemoteLock('outer')
  async outer(): Promise<string> {
    return this.inner();
  }

  @WithRemoteLock('outer', 10_000)
  async inner(): Promise<string> {
    return 'inner';
  }

  @WithRemoteLock('outer-nesting')
  async outerNesting(): Promise<string> {
    return this.innerNesting();
  }

  @WithRemoteLock('outer-nesting', { reentrant: true })
  async innerNesting(): Promise<string> {
    return `nested in ${this.rlock.current()?.name}`;
  }

  @WithRemoteLock(() => '')
  async badName(): Promise<void> {}

  @WithRemoteLock('sync')
  twice(n: number): number {
    return n * 2;
  }

  @WithRemoteLock('stream')
  stream(source: Observable<number>): Observable<number> {
    return source;
  }

  // No declared return type: the wrapper finds the Observable when the method returns it.
  @WithRemoteLock('stream-untyped')
  streamUntyped(source: Observable<number>) {
    return source;
  }

  // Undeclared, and nobody subscribes: released after the acquire timeout (at least 1 s).
  @WithRemoteLock('stream-unwatched', 300)
  streamUnwatched(source: Observable<number>) {
    return source;
  }

  @WithRemoteLock('stream-failing')
  failing(error: Error): Observable<number> {
    return timer(50).pipe(mergeMap(() => throwError(() => error)));
  }
}

describe.each(testDatabases())('@WithRemoteLock on $label', (db) => {
  let app: TestApp;
  let jobs: Jobs;

  beforeAll(async () => {
    app = await createTestApp(
      db,
      { tableName: uniqueTableName('rlock_dec'), errors: [RecoverableError] },
      { providers: [Jobs] },
    );
    jobs = app.module.get(Jobs);
  });
  afterAll(() => app.close());

  it('runs the method holding the lock named from its arguments, visible through current()', async () => {
    const result = await jobs.build('1', undefined);
    expect(result.lock).toBe('job:1');
    expect(result.fence).toBeGreaterThan(0);
    expect((await app.service.inspect('job:1'))?.status).toBe('free');
    expect(jobs.twice(21)).toBeInstanceOf(Promise);
    expect(await jobs.twice(21)).toBe(42);
  });

  it('releases with the thrown error, rethrows the same object and hands the error to the next @LastError()', async () => {
    const thrown = new RecoverableError('half built');
    await expect(jobs.build('2', thrown)).rejects.toBe(thrown);
    expect((await app.service.inspect('job:2'))?.lastOutcome).toBe('error');
    // whatever the caller passes in the @LastError() position is replaced
    await jobs.build('2', undefined, new Error('from the caller'));
    const received = jobs.seen.at(-1);
    expect(received).toBeInstanceOf(RecoverableError);
    expect((received as Error).message).toBe('half built');
    await jobs.build('2', undefined);
    expect(jobs.seen.at(-1)).toBeNull();
  });

  it('waits up to acquireTimeoutMs, then throws AcquireTimeoutError outside HTTP', async () => {
    const held = await app.service.lock('job:3', 1000);
    const before = jobs.runs;
    const error = await jobs.build('3', undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as AcquireTimeoutError).lockName).toBe('job:3');
    expect(jobs.runs).toBe(before);
    await held.unlock();
  });

  it("onLocked 'skip' makes one attempt and returns undefined without running", async () => {
    const held = await app.service.lock('skip-me', 1000);
    const before = jobs.runs;
    const started = performance.now();
    expect(await jobs.singleton()).toBeUndefined();
    expect(await jobs.singletonWaiting()).toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(250); // the second one waited
    expect(jobs.runs).toBe(before);
    await held.unlock();
    expect(await jobs.singleton()).toBe('ran');
  });

  it('fails at once with LockReentryError when a locked method asks for its own lock again', async () => {
    const started = performance.now();
    await expect(jobs.outer()).rejects.toBeInstanceOf(LockReentryError);
    expect(performance.now() - started).toBeLessThan(5_000); // far below inner's 10 s timeout
    expect((await app.service.inspect('outer'))?.status).toBe('free');
  });

  it('nests with reentrant: true', async () => {
    expect(await jobs.outerNesting()).toBe('nested in outer-nesting');
    expect((await app.service.inspect('outer-nesting'))?.status).toBe('free');
  });

  it('rejects a name function that produces an invalid name with InvalidArgumentError', async () => {
    await expect(jobs.badName()).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it.each([
    ['a declared Observable (locks on subscribe)', 'stream', 'stream'],
    ['an undeclared Observable (found at run time)', 'streamUntyped', 'stream-untyped'],
  ] as const)('holds the lock until %s completes', async (_label, method, name) => {
    const { subject, source, subscribed } = observedSource<number>();
    const result = (await (jobs[method](source) as unknown)) as Observable<number>;
    const collected = firstValueFrom(result.pipe(toArray()));
    // Emit only once the wrapper has subscribed to the source (a Subject drops values sent
    // before); by then it must hold the lock.
    await within(subscribed, 5_000, 'the wrapper did not subscribe to the source');
    expect((await app.service.inspect(name))?.status).toBe('held');
    subject.next(1);
    subject.next(2);
    await sleep(100);
    expect((await app.service.inspect(name))?.status).toBe('held');
    subject.complete();
    expect(await collected).toEqual([1, 2]);
    // released before the subscriber heard of the completion
    expect((await app.service.inspect(name))?.status).toBe('free');
  });

  it('returns an Observable that takes the lock only when subscribed to, when the method declares one', async () => {
    const source = new Subject<number>();
    const lazy = jobs.stream(source);
    expect(isObservable(lazy)).toBe(true);
    await sleep(50);
    expect((await app.service.inspect('stream'))?.status ?? 'free').toBe('free');
    const pending = jobs.streamUntyped(source) as unknown;
    expect(pending).toBeInstanceOf(Promise); // an undeclared one: locked when called
    const untyped = (await pending) as Observable<number>;
    expect((await app.service.inspect('stream-untyped'))?.status).toBe('held');
    const done = firstValueFrom(untyped.pipe(toArray()));
    source.complete();
    expect(await done).toEqual([]);
    expect((await app.service.inspect('stream-untyped'))?.status).toBe('free');
  });

  it('releases the lock of an Observable when the subscriber unsubscribes', async () => {
    const before = (await app.service.inspect('stream'))?.fence ?? 0;
    const first = await firstValueFrom(jobs.stream(interval(50))); // unsubscribes after one value
    expect(first).toBe(0);
    await waitFor(async () => (await app.service.inspect('stream'))?.status === 'free');
    // the holding that ended is the one this subscription took, not an earlier one
    expect(await app.service.inspect('stream')).toMatchObject({
      fence: before + 1,
      lastOutcome: 'released',
    });
  });

  it('stops waiting for the lock of an Observable when the subscriber leaves first', async () => {
    const held = await app.service.lock('stream', 1000);
    const subscription = jobs.stream(interval(10)).subscribe();
    await sleep(100);
    subscription.unsubscribe();
    await held.unlock();
    await sleep(200);
    expect((await app.service.inspect('stream'))?.fence).toBe(held.fence); // never acquired again
  });

  it('releases the lock of an Observable nobody subscribes to, with an error saying so (issue 13, item 16)', async () => {
    let ran = false;
    const source = new Observable<number>((subscriber) => {
      ran = true;
      subscriber.next(1);
      subscriber.complete();
    });
    const result = (await (jobs.streamUnwatched(source) as unknown)) as Observable<number>;
    expect(isObservable(result)).toBe(true);
    await waitFor(async () => (await app.service.inspect('stream-unwatched'))?.status === 'free');
    const state = await app.service.inspect('stream-unwatched');
    expect(state?.lastOutcome).toBe('error');
    expect(state?.lastError?.message).toContain(
      'Jobs.streamUnwatched returned was not subscribed to within 1000 ms',
    );
    // A late subscriber gets the same error; the source never runs without the lock.
    const late = await firstValueFrom(result).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(LockLostError);
    expect((late as Error).message).toContain('not subscribed to within 1000 ms');
    expect(ran).toBe(false);
  });

  it('releases with the error of a failing Observable and passes the same error on', async () => {
    const error = new RecoverableError('stream broke');
    await expect(firstValueFrom(jobs.failing(error))).rejects.toBe(error);
    const state = await app.service.inspect('stream-failing');
    expect(state?.status).toBe('free');
    expect(state?.lastError).toBeInstanceOf(RecoverableError);
  });

  it('fails with a message naming RLockModule.forRoot() for an instance not created by Nest', async () => {
    const orphan = new Jobs(app.service);
    const error = await orphan.build('4', undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RLockConfigurationError);
    expect((error as Error).message).toBe(MESSAGES.decorator.noService('Jobs.build'));
    expect((error as Error).message).toContain('RLockModule.forRoot()');
  });

  it('fails at startup when the decorated provider does not see RLockModule', async () => {
    @Injectable()
    class Locked {
      @WithRemoteLock('x')
      run(): void {}
    }
    @Module({ providers: [Locked] })
    class BlindModule {}
    const blind = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...db.options(), synchronize: true, autoLoadEntities: true }),
        RLockModule.forRoot({ tableName: uniqueTableName('rlock_dec'), isGlobal: false }),
        BlindModule,
      ],
    }).compile();
    await expect(blind.init()).rejects.toThrow(MESSAGES.decorator.moduleNotVisible('Locked'));
    await blind.close();
  });

  it('fails at startup when @LastError() is on a method without @WithRemoteLock', async () => {
    @Injectable()
    class Forgot {
      run(@LastError() _lastError: Error | null): void {}
    }
    const module = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...db.options(), synchronize: true, autoLoadEntities: true }),
        RLockModule.forRoot({ tableName: uniqueTableName('rlock_dec') }),
      ],
      providers: [Forgot],
    }).compile();
    await expect(module.init()).rejects.toThrow(
      MESSAGES.decorator.lastErrorWithoutLock('Forgot.run'),
    );
    await module.close();
  });
});

describe('@WithRemoteLock without a usable RLockModule', () => {
  it('fails with a message naming RLockModule.forRoot() when the application never imported it', async () => {
    @Injectable()
    class Lonely {
      @WithRemoteLock('lonely')
      run(): string {
        return 'ran';
      }
    }
    const module = await Test.createTestingModule({ providers: [Lonely] }).compile();
    await module.init();
    await expect(module.get(Lonely).run()).rejects.toThrow(
      MESSAGES.decorator.noService('Lonely.run'),
    );
    await module.close();
  });

  it('runs decorated methods directly, with lastError null, under forRoot({ disabled: true })', async () => {
    @Injectable()
    class Tested {
      @WithRemoteLock((id: string) => `t:${id}`, 1)
      run(id: string, @LastError() lastError: Error | null): string {
        return `${id}:${String(lastError)}`;
      }

      @WithRemoteLock('t:stream')
      stream(): Observable<number> {
        return interval(1).pipe(take(2));
      }
    }
    const module = await Test.createTestingModule({
      imports: [RLockModule.forRoot({ disabled: true })],
      providers: [Tested],
    }).compile();
    await module.init();
    const tested = module.get(Tested);
    expect(tested.run('a', new Error('passed by the caller'))).toBe('a:null');
    expect(await firstValueFrom(tested.stream().pipe(toArray()))).toEqual([0, 1]);
    const service = module.get(RLockService);
    expect(service.disabled).toBe(true);
    // A configuration error, not a database failure: it reaches the caller as it is.
    const error = await service.lock('t:a', 0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RLockConfigurationError);
    expect((error as Error).message).toBe(MESSAGES.disabled);
    await module.close();
  });

  it('works on SQLite in memory, as the README suggests for application tests', async () => {
    @Injectable()
    class Counter {
      running = 0;
      most = 0;

      @WithRemoteLock('memory', 5_000)
      async bump(@LastError() lastError: Error | null = null): Promise<Error | null> {
        this.most = Math.max(this.most, ++this.running);
        await sleep(20);
        this.running--;
        return lastError;
      }
    }
    const module = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'better-sqlite3',
          database: ':memory:',
          synchronize: true,
          autoLoadEntities: true,
        }),
        RLockModule.forRoot(),
      ],
      providers: [Counter],
    }).compile();
    await module.init();
    const counter = module.get(Counter);
    expect(await Promise.all([counter.bump(), counter.bump(), counter.bump()])).toEqual([
      null,
      null,
      null,
    ]);
    expect(counter.most).toBe(1);
    await module.close();
  });

  it('types the name function against the leading parameters of the method', () => {
    class Typed {
      @WithRemoteLock((id: string, part: number) => `typed:${id}:${part}`)
      matches(_id: string, _part: number, _extra: boolean): void {}

      // @ts-expect-error the name function takes a number where the method has a string
      @WithRemoteLock((id: number) => `typed:${id}`)
      mismatched(_id: string): void {}
    }
    expect(typeof Typed.prototype.matches).toBe('function');
  });

  it('validates the decorator arguments when the class is defined', () => {
    expect(() => WithRemoteLock(42 as unknown as string)).toThrow(InvalidArgumentError);
    expect(() => WithRemoteLock('x', -1)).toThrow(InvalidArgumentError);
    expect(() => WithRemoteLock('x', { onLocked: 'wait' as 'skip' })).toThrow(
      /onLocked must be 'throw' or 'skip'/,
    );
    expect(() => WithRemoteLock('x', { ttlMs: 5 })).toThrow(InvalidArgumentError);
    expect(() => WithRemoteLock('x', { timeout: 5 } as object)).toThrow(InvalidArgumentError);
  });
});

/**
 * A hot source (a Subject) that says when it was subscribed to: `subscribed` resolves once
 * the subscription to the Subject exists, so values sent after it reach the subscriber.
 */
function observedSource<T>(): {
  subject: Subject<T>;
  source: Observable<T>;
  subscribed: Promise<void>;
} {
  const subject = new Subject<T>();
  let markSubscribed!: () => void;
  const subscribed = new Promise<void>((resolve) => (markSubscribed = resolve));
  const source = new Observable<T>((subscriber) => {
    const subscription = subject.subscribe(subscriber);
    markSubscribed();
    return subscription;
  });
  return { subject, source, subscribed };
}

/** Resolves when `promise` does; fails with `message` if that takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}
