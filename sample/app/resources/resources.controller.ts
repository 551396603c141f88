import {
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  NotFoundException,
  Param,
  ParseBoolPipe,
  ParseEnumPipe,
  ParseIntPipe,
  Post,
  Query,
  UseFilters,
} from '@nestjs/common';
import { LastError, WithRemoteLock } from '../../../lib';
import { SAMPLE_CONFIG } from '../sample.config';
import type { Resource } from './resource.entity';
import { ResourceErrorsFilter } from './resource-errors.filter';
import type { CreateOutcome } from './create-outcome.interface';
import { InjectedFailure } from './injected-failure.enum';
import { ResourcesService } from './resources.service';

/** `POST /resources/:id` creates a resource once, whichever instances are asked. */
@Controller('resources')
@UseFilters(ResourceErrorsFilter)
export class ResourcesController {
  constructor(private readonly resources: ResourcesService) {}

  /**
   * Creates the resource if it is missing. Concurrent requests for one id, on any
   * instance, queue on the lock `resource:<id>`; the ones that come after the builder find
   * the resource and return at once. Waiting longer than the acquire timeout answers 409.
   *
   * `?fail=recoverable|fatal` makes this build fail half-way; `?workMs=` sets its duration;
   * `?force=true` builds even though a previous build failed fatally.
   */
  @Post(':id')
  @HttpCode(HttpStatus.OK)
  @WithRemoteLock((id: string) => `resource:${id}`, {
    acquireTimeoutMs: SAMPLE_CONFIG.acquireTimeoutMs,
    ttlMs: SAMPLE_CONFIG.ttlMs,
  })
  create(
    @Param('id') id: string,
    @LastError() previous: Error | null,
    @Query('fail', new ParseEnumPipe(InjectedFailure, { optional: true })) fail?: InjectedFailure,
    @Query('workMs', new ParseIntPipe({ optional: true })) workMs?: number,
    @Query('force', new ParseBoolPipe({ optional: true })) force?: boolean,
  ): Promise<CreateOutcome> {
    return this.resources.createIfMissing(id, previous, { fail, workMs, force });
  }

  /** Every resource. */
  @Get()
  list(): Promise<Resource[]> {
    return this.resources.list();
  }

  /** One resource; 404 if it was never started. */
  @Get(':id')
  async findOne(@Param('id') id: string): Promise<Resource> {
    const resource = await this.resources.find(id);
    if (resource === null) throw new NotFoundException(`No resource "${id}".`);
    return resource;
  }
}
