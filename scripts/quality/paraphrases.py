"""Hand-written paraphrase pairs for the retrieval check of the quality benchmark.

Written for prunec (no third-party data). Each pair says the same thing in other words; retrieval
embeds every first sentence and every second one and counts how often a sentence's nearest
neighbour among the second sentences is its own paraphrase.
"""

PAIRS = [
    ("The train to the airport leaves every twenty minutes.", "Trains run to the airport three times an hour."),
    ("She forgot her umbrella and got soaked on the way home.", "Without her umbrella, she was drenched walking back."),
    ("The museum is closed on Mondays.", "You cannot visit the museum at the start of the week."),
    ("He fixed the leaking kitchen tap himself.", "He repaired the dripping faucet in the kitchen on his own."),
    ("The recipe needs two cups of flour and one egg.", "For this dish you need an egg and 2 cups of flour."),
    ("Our flight was delayed by three hours because of fog.", "Fog held up our plane for three hours."),
    ("The children built a snowman in the garden.", "The kids made a snowman in the yard."),
    ("This laptop's battery lasts all day.", "The notebook computer runs a full day on one charge."),
    ("The concert was cancelled due to the storm.", "Because of the storm, the show did not take place."),
    ("I need to renew my passport before the trip.", "My passport must be updated before I travel."),
    ("The bakery sells fresh bread every morning.", "Each morning the baker's shop has freshly baked loaves."),
    ("He runs five kilometres before breakfast.", "Before eating in the morning he goes for a 5 km run."),
    ("The library extended its opening hours.", "The library is now open for longer each day."),
    ("Prices for vegetables rose sharply this winter.", "Vegetables became much more expensive this winter."),
    ("The bridge will be closed for repairs next week.", "Next week the bridge shuts so it can be fixed."),
    ("My grandmother grows tomatoes on her balcony.", "Grandma cultivates tomatoes on her small terrace."),
    ("The team won the final in the last minute.", "They scored the winning goal of the final at the very end."),
    ("Please switch off your phones during the lecture.", "Mobile phones must be turned off while the talk is on."),
    ("The new policy reduces paperwork for small firms.", "Small companies will fill in fewer forms under the new rules."),
    ("The cat sleeps on the windowsill all afternoon.", "All afternoon the cat naps by the window."),
    ("The hotel room had a view of the harbour.", "From our hotel room we could see the port."),
    ("The meeting has been moved to Thursday morning.", "We rescheduled the meeting for Thursday before noon."),
    ("He apologised for arriving late.", "He said sorry for coming after the agreed time."),
    ("The software update fixed the crash on startup.", "After the update the program no longer fails when it launches."),
    ("Tickets sold out within an hour.", "All the tickets were gone in less than sixty minutes."),
    ("The river flooded the lower part of the town.", "Water from the river covered the town's low-lying streets."),
    ("She speaks three languages fluently.", "She is fluent in three different languages."),
    ("The soup is too salty to eat.", "There is so much salt in the soup that it cannot be eaten."),
    ("Our neighbours are moving to another city.", "The people next door are relocating to a different town."),
    ("The doctor advised him to rest for a week.", "He was told by his physician to take seven days off."),
    ("The printer on the second floor is out of paper.", "There is no paper left in the upstairs printer."),
    ("Electric cars are becoming cheaper to buy.", "The purchase price of battery vehicles keeps falling."),
    ("The exam results will be published on Friday.", "Students get their test scores at the end of the week."),
    ("He lost his keys somewhere in the park.", "Somewhere in the park he dropped his keys."),
    ("The restaurant does not take reservations.", "You cannot book a table at that restaurant."),
    ("The mountain path is dangerous after heavy rain.", "After a downpour the trail up the mountain is risky."),
    ("She painted the fence bright blue.", "She gave the fence a coat of vivid blue paint."),
    ("The company hired twenty new engineers this year.", "This year the firm took on twenty more engineers."),
    ("The baby finally fell asleep after midnight.", "It was past twelve when the infant at last went to sleep."),
    ("The shop offers a discount to students.", "Students pay less at that store."),
]
