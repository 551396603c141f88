import { Controller, Get } from '@nestjs/common';
import { RLockService, type LockState } from '../../../lib';

/** A lock as `GET /locks` shows it. */
export interface LockView extends Omit<LockState, 'lastError'> {
  lastError: { name: string; message: string } | null;
}

/** `GET /locks`: every lock in the table: holder, fence, expiry and last outcome. */
@Controller('locks')
export class LocksController {
  constructor(private readonly locks: RLockService) {}

  /** The state of every lock, by name. */
  @Get()
  async list(): Promise<LockView[]> {
    const states = await this.locks.list();
    return states.map((state) => ({
      ...state,
      lastError:
        state.lastError === null
          ? null
          : { name: state.lastError.name, message: state.lastError.message },
    }));
  }
}
