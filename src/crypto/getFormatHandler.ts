/** Maps a format id to its handler. */
import { aesGcmHandler } from './aesGcmFormat.js';
import { djangoFernetV1Handler, djangoFernetV2Handler, fernetHandler } from './fernetFormats.js';
import type { FormatHandler } from './formatHandler.js';
import type { Format } from './formats.js';

const HANDLERS: Record<Format, FormatHandler> = {
  fernet: fernetHandler,
  'django-fernet-v1': djangoFernetV1Handler,
  'django-fernet-v2': djangoFernetV2Handler,
  'aes-256-gcm': aesGcmHandler,
};

/** The handler of `format` (formats are validated by the type; config validates strings). */
export function getFormatHandler(format: Format): FormatHandler {
  return HANDLERS[format];
}
