import { Catch, HttpStatus, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { FatalError, RecoverableError } from './resource.errors';

/** The part of Express's response object this filter uses. */
interface HttpResponse {
  status(code: number): { json(body: unknown): void };
}

/**
 * Answers a failed build: 503 (try again later) for a recoverable error, 422 (this
 * resource cannot be built) for a fatal one, including refusals after a fatal error.
 */
@Catch(RecoverableError, FatalError)
export class ResourceErrorsFilter implements ExceptionFilter {
  catch(error: RecoverableError | FatalError, host: ArgumentsHost): void {
    const statusCode =
      error instanceof FatalError
        ? HttpStatus.UNPROCESSABLE_ENTITY
        : HttpStatus.SERVICE_UNAVAILABLE;
    host
      .switchToHttp()
      .getResponse<HttpResponse>()
      .status(statusCode)
      .json({
        statusCode,
        error: error.name,
        message: error.message,
        failedOn: error.instance,
        refused: error instanceof FatalError ? error.refused : false,
      });
  }
}
