import AgentQueue
import ArgumentParser
print("x")
