// The default ws-messaging wire format: JSON text frames.
'use strict'

module.exports = {
  name: 'json',
  binary: false,
  encoder: JSON.stringify,
  decoder: JSON.parse
}
