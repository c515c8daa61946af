/** Maps a format id to its handler. */
import { aesGcmHandler } from './aesGcmFormat.js';
import { djangoFernetV1Handler, djangoFernetV2Handler, fernetHandler } from './fernetFormats.js';
import type { FormatHandler } from './formatHandler.js';
import type { Format } from './formats.js';
import { ConfigError } from '../errors.js';

const HANDLERS: Record<Format, FormatHandler> = {
  fernet: fernetHandler,
  'django-fernet-v1': djangoFernetV1Handler,
  'django-fernet-v2': djangoFernetV2Handler,
  'aes-256-gcm': aesGcmHandler,
};

/** The handler of `format`; ConfigError for an unknown one (JavaScript callers have no type to stop them). */
export function getFormatHandler(format: Format): FormatHandler {
  const handler = Object.hasOwn(HANDLERS, format) ? HANDLERS[format] : undefined;
  if (!handler) throw new ConfigError(`unknown format ${JSON.stringify(format)}: use one of ${Object.keys(HANDLERS).join(', ')}`);
  return handler;
}
