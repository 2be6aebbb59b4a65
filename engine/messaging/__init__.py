"""Getting messages out and hearing back: the dispatcher that sends queued messages once
each through a provider, the providers' configurations and channels (SendGrid, SMTP, SMS,
push, web API), delivery status from webhooks, and the guard on outbound addresses."""
