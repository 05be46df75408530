import PostgresNIO
import ServiceLifecycle
import Logging
