import {
  Body,
  Controller,
  Injectable,
  Param,
  Post,
  SetMetadata,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
  type NestInterceptor,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { RLockModule, RLockService, WithRemoteLock } from '../../lib';
import { testDatabases, uniqueTableName } from '../support/databases';

// "below": @WithRemoteLock is written under the Nest decorator (applied first, so its
// wrapper must carry the metadata the Nest decorator writes next);
// "above": it is written over it (it wraps a function that already has the metadata).

@Injectable()
class HeaderGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToHttp().getRequest().headers['x-pass'] === 'yes';
  }
}

@Injectable()
class TagInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler) {
    context.switchToHttp().getResponse().setHeader('x-intercepted', 'yes');
    return next.handle();
  }
}

@Controller('order')
class OrderController {
  constructor(private readonly rlock: RLockService) {}

  @Post('route-below/:id')
  @WithRemoteLock((id: string) => `order:route-below:${id}`)
  routeBelow(@Param('id') id: string, @Body() body: { value: number }) {
    return { id, value: body.value, lock: this.rlock.current()?.name };
  }

  @WithRemoteLock((id: string) => `order:route-above:${id}`)
  @Post('route-above/:id')
  routeAbove(@Param('id') id: string, @Body() body: { value: number }) {
    return { id, value: body.value, lock: this.rlock.current()?.name };
  }

  @Post('guard-below')
  @UseGuards(HeaderGuard)
  @WithRemoteLock('order:guard-below')
  guardBelow() {
    return { lock: this.rlock.current()?.name };
  }

  @Post('guard-above')
  @WithRemoteLock('order:guard-above')
  @UseGuards(HeaderGuard)
  guardAbove() {
    return { lock: this.rlock.current()?.name };
  }

  @Post('interceptor-below')
  @UseInterceptors(TagInterceptor)
  @WithRemoteLock('order:interceptor-below')
  interceptorBelow() {
    return { lock: this.rlock.current()?.name };
  }

  @Post('interceptor-above')
  @WithRemoteLock('order:interceptor-above')
  @UseInterceptors(TagInterceptor)
  interceptorAbove() {
    return { lock: this.rlock.current()?.name };
  }

  @SetMetadata('tag', 'below')
  @WithRemoteLock('order:meta-below')
  metaBelow() {
    return this.rlock.current()?.name;
  }

  @WithRemoteLock('order:meta-above')
  @SetMetadata('tag', 'above')
  metaAbove() {
    return this.rlock.current()?.name;
  }
}

@Injectable()
class Jobs {
  @Cron('0 0 1 1 *', { name: 'cron-below' })
  @WithRemoteLock('order:cron-below')
  async cronBelow(): Promise<void> {}

  @WithRemoteLock('order:cron-above')
  @Cron('0 0 1 1 *', { name: 'cron-above' })
  async cronAbove(): Promise<void> {}
}

describe.each(testDatabases())('decorator order on $label', (db) => {
  let app: INestApplication;
  let service: RLockService;

  beforeAll(async () => {
    const module = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...db.options(), synchronize: true, autoLoadEntities: true }),
        RLockModule.forRoot({ tableName: uniqueTableName('rlock_order') }),
        ScheduleModule.forRoot(),
      ],
      controllers: [OrderController],
      providers: [Jobs],
    }).compile();
    app = module.createNestApplication({ logger: false });
    await app.init();
    service = app.get(RLockService);
  });
  afterAll(() => app.close());

  const post = (path: string) => request(app.getHttpServer()).post(path);

  describe.each(['below', 'above'])('@WithRemoteLock %s the Nest decorator', (order) => {
    it('keeps @Post and its @Param/@Body parameters', async () => {
      const response = await post(`/order/route-${order}/7`).send({ value: 42 });
      expect(response.status).toBe(201);
      expect(response.body).toEqual({ id: '7', value: 42, lock: `order:route-${order}:7` });
    });

    it('keeps @UseGuards', async () => {
      expect((await post(`/order/guard-${order}`)).status).toBe(403);
      const allowed = await post(`/order/guard-${order}`).set('x-pass', 'yes');
      expect(allowed.status).toBe(201);
      expect(allowed.body).toEqual({ lock: `order:guard-${order}` });
    });

    it('keeps @UseInterceptors', async () => {
      const response = await post(`/order/interceptor-${order}`);
      expect(response.status).toBe(201);
      expect(response.headers['x-intercepted']).toBe('yes');
      expect(response.body).toEqual({ lock: `order:interceptor-${order}` });
    });

    it('keeps SetMetadata and the function name', async () => {
      const controller = app.get(OrderController);
      const method = order === 'below' ? controller.metaBelow : controller.metaAbove;
      expect(app.get(Reflector).get('tag', method)).toBe(order);
      expect(method.name).toBe(order === 'below' ? 'metaBelow' : 'metaAbove');
      expect(controller.routeBelow.name).toBe('routeBelow');
      expect(controller.routeAbove.name).toBe('routeAbove');
      expect(await method.call(controller)).toBe(`order:meta-${order}`);
    });

    it('keeps @Cron: the job is registered and its tick runs under the lock', async () => {
      const job = app.get(SchedulerRegistry).getCronJob(`cron-${order}`);
      expect(job).toBeDefined();
      await job.fireOnTick();
      await waitFor(async () => (await service.inspect(`order:cron-${order}`))?.status === 'free');
      expect((await service.inspect(`order:cron-${order}`))?.fence).toBeGreaterThan(0);
    });
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
