"""The built-in synthetic routing benchmark (``loader: synthetic``): the framework's default offline data.

    python benchmarks/synthetic_gap.py          # best single LLM vs per-task best vs oracle
    python -c "from router_lab.data.loaders.synthetic import *; print(describe_benchmark(make_synthetic_benchmark()))"

Queries read like user requests from ten domains (math, code, science, medicine, law,
finance, history, creative_writing, translation, chit_chat) and nine task types (explain,
solve, write, summarize, compare, debug, recommend, translate, converse), built from
per-domain templates and slot fillers. Each query has a latent difficulty ``d``; the text
shows it only partly: a noisy copy of ``d`` decides whether the query says "Quick question",
"Keep it brief" or "Advanced", "Give a step-by-step proof", plus extra constraints (which
also make it longer, and so dearer to answer).

A simulated pool of seven LLMs answers every query. LLM ``l`` succeeds with probability

    q = sigmoid(skill[l, domain] + skill_task[l, task_type] - sens[l] * d + noise * eps)

with ``eps ~ N(0, 1)`` per (query, LLM). Domains score the way RouterDC's data does:
``multi_attempt`` domains score k/10 for k ~ Binomial(10, q); ``probability`` domains score
the probability given to the correct choice when a Bernoulli(q) draw says the answer is
right, else 0. A record's cost for an LLM is its base cost (``conf/llm_pool/synthetic.yaml``)
times a length factor of the query. The skills are fixed (hand-set, plus a small jitter from
``POOL_SEED``), so every ``seed`` samples new queries from the same pool.
"""
from __future__ import annotations

import string
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from router_lab.data.records import DataError, RoutingRecord, stable_id

N_ATTEMPTS = 10
POOL_SEED = 20261122

TASK_TYPES = ("explain", "solve", "write", "summarize", "compare", "debug", "recommend", "translate", "converse")

# --------------------------------------------------------------------------- the pool
# (name, base cost per query). Ordered by cost, so ties in argmax go to the cheapest LLM.
LLMS = (
    ("tiny-chat-1b", 0.02),
    ("polyglot-mt-8b", 0.06),
    ("code-specialist-7b", 0.1),
    ("math-solver-13b", 0.2),
    ("scholar-34b", 0.45),
    ("generalist-70b", 0.9),
    ("frontier-xl", 2.0),
)
LLM_NAMES = tuple(n for n, _ in LLMS)

DOMAINS = ("math", "code", "science", "medicine", "law", "finance", "history",
           "creative_writing", "translation", "chit_chat")

# Logit of success per LLM (rows, LLMS order) and domain (columns, DOMAINS order) at d = 0.
# Tuned so no LLM wins everywhere: the frontier model is strong but dear, each specialist
# beats it on its home turf, and the small models win the easy queries on cost ties.
#                 math  code   sci   med   law   fin  hist    cw trans  chat
_DOMAIN_SKILL = np.array([
    [-2.0, -2.0, -1.6, -1.8, -1.8, -1.6, -0.9, -0.2, -0.8,  0.9],   # tiny-chat-1b
    [-1.8, -1.8, -1.2, -1.2, -0.8, -1.2, -0.3,  0.9,  1.5,  0.9],   # polyglot-mt-8b
    [-0.4,  1.5, -0.7, -1.4, -1.5, -0.4, -1.4, -1.2, -1.0,  0.0],   # code-specialist-7b
    [ 1.35, -0.1,  0.8, -0.8, -1.2,  0.5, -1.1, -1.2, -1.2, -0.4],  # math-solver-13b
    [-0.5, -0.7,  0.9,  1.2,  0.6,  0.6,  1.0,  0.2,  0.2,  0.3],   # scholar-34b
    [ 0.5,  0.5,  0.5,  0.4,  0.4,  0.5,  0.6,  0.5,  0.6,  0.8],   # generalist-70b
    [ 0.9,  0.8,  0.8,  0.7,  0.7,  0.8,  0.7,  0.6,  0.6,  0.6],   # frontier-xl
])
# Extra logit per task type (columns, TASK_TYPES order): what a router can read beyond the
# domain (the code model debugs anything, the math model computes, the scholar explains).
#                 expl  solve write  summ  comp debug   rec trans  conv
_TASK_SKILL = np.array([
    [ 0.0, -1.2,  0.2,  0.0, -0.6, -1.2,  0.4,  0.0,  1.0],   # tiny-chat-1b
    [ 0.0, -0.8,  0.6,  0.2, -0.2, -0.6,  0.0,  1.2,  0.4],   # polyglot-mt-8b
    [ 0.0,  0.4,  0.6, -0.4,  0.0,  1.2,  0.0, -0.6, -0.4],   # code-specialist-7b
    [-0.2,  1.2, -0.6, -0.4,  0.0,  0.4, -0.4, -0.6, -0.6],   # math-solver-13b
    [ 0.8, -0.4,  0.0,  0.8,  0.6, -0.4,  0.4,  0.0,  0.0],   # scholar-34b
    [ 0.2,  0.0,  0.2,  0.2,  0.2,  0.0,  0.2,  0.0,  0.2],   # generalist-70b
    [ 0.0,  0.6,  0.0,  0.0,  0.2,  0.6,  0.0,  0.0, -0.2],   # frontier-xl
])
# How fast each LLM degrades with difficulty: small models fall off hard queries.
_SENSITIVITY = np.array([1.9, 1.6, 1.3, 1.2, 1.1, 1.0, 0.75])
_JITTER = 0.1  # a little fixed irregularity so no two cells tie by construction

SCORE_TYPE = {
    "math": "multi_attempt", "code": "multi_attempt", "creative_writing": "multi_attempt",
    "translation": "multi_attempt", "chit_chat": "multi_attempt",
    "science": "probability", "medicine": "probability", "law": "probability",
    "finance": "probability", "history": "probability",
}


@dataclass(frozen=True)
class _Pool:
    domain_skill: np.ndarray  # (n_llms, n_domains)
    task_skill: np.ndarray    # (n_llms, n_task_types)
    sensitivity: np.ndarray   # (n_llms,)
    cost: np.ndarray          # (n_llms,)


@lru_cache(maxsize=1)
def _pool() -> _Pool:
    rng = np.random.default_rng(POOL_SEED)
    return _Pool(
        domain_skill=_DOMAIN_SKILL + _JITTER * rng.standard_normal(_DOMAIN_SKILL.shape),
        task_skill=_TASK_SKILL + _JITTER * rng.standard_normal(_TASK_SKILL.shape),
        sensitivity=_SENSITIVITY.copy(),
        cost=np.array([c for _, c in LLMS]),
    )


def synthetic_pool() -> dict:
    """The pool config of the synthetic benchmark, as in ``conf/llm_pool/synthetic.yaml``."""
    return {"name": "synthetic", "llms": [{"name": n, "cost": c} for n, c in LLMS]}


# --------------------------------------------------------------------------- the text
@dataclass(frozen=True)
class _Domain:
    templates: dict[str, tuple[str, ...]]  # task type -> templates with {slot} fields
    slots: dict[str, tuple[str, ...]]      # {x2} draws a second, different x; {x_cap} capitalises
    constraints: dict[str, tuple[str, ...]]  # asks that make a query harder: per task type, "any" for all


_TEXT: dict[str, _Domain] = {
    "math": _Domain(
        templates={
            "explain": (
                "Can you explain {concept}?", "What is the intuition behind {concept}?",
                "I don't get {concept}. Can you walk me through it?",
                "How would you teach {concept} to someone who struggles with math?",
                "Why does {concept} work?", "What is {concept} actually used for?",
            ),
            "solve": (
                "Please {problem}.", "Can you {problem}?", "Help me {problem}.", "Homework question: {problem}.",
                "How do I {problem}?", "Prove that {statement}.", "Show that {statement}.",
                "Is it true that {statement}? Prove it or give a counterexample.",
            ),
            "compare": (
                "What's the difference between {concept} and {concept2}?", "Compare {concept} with {concept2}.",
                "How are {concept} and {concept2} related?",
            ),
            "debug": (
                "I tried to {problem} and got a different answer than the book. Where could I have gone wrong?",
                "Check my work: I tried to {problem} but I think I made a mistake.",
                "My proof that {statement} feels circular. Can you find the gap?",
            ),
            "recommend": (
                "What's a good book to learn {concept}?", "Which resources would you recommend for studying {concept}?",
                "What should I learn before {concept}?",
            ),
        },
        slots={
            "concept": (
                "derivatives", "the chain rule", "eigenvalues", "Bayes' theorem", "modular arithmetic",
                "the central limit theorem", "complex numbers", "Taylor series", "integration by parts",
                "matrix determinants", "the pigeonhole principle", "prime factorization", "logarithms",
                "conditional probability", "group theory", "Fourier series", "linear regression",
                "the binomial theorem", "limits", "vector spaces", "Markov chains", "induction",
            ),
            "problem": (
                "solve 3x + 7 = 22", "find the derivative of x^3 * sin(x)", "integrate x * e^x from 0 to 1",
                "find the eigenvalues of [[2, 1], [1, 2]]", "compute 17^23 mod 5",
                "count the ways 8 people can sit around a round table", "find the sum of the first 100 odd numbers",
                "solve x^2 - 5x + 6 = 0", "find the probability of at least two heads in five coin flips",
                "find the limit of (1 + 1/n)^n as n goes to infinity", "find the GCD of 252 and 198",
                "work out when a train going 100 km/h catches one that left an hour earlier at 80 km/h",
                "compute the determinant of the matrix with rows (1,2,3), (0,1,4), (5,6,0)",
                "count the subsets of a 10-element set with an even number of elements",
                "find the sides of a rectangle with perimeter 40 and area 96",
                "find the area under y = x^2 between x = 1 and x = 3",
                "find the expected number of die rolls until the first six",
                "solve the system 2x + y = 7 and x - y = 2", "simplify (x^2 - 9) / (x - 3)",
            ),
            "statement": (
                "there are infinitely many primes", "the square root of 2 is irrational",
                "the sum of the first n odd numbers is n^2", "every tree with n nodes has n - 1 edges",
                "a continuous function on [a, b] attains its maximum", "the harmonic series diverges",
                "n^3 - n is divisible by 6 for every integer n", "every finite group of prime order is cyclic",
            ),
        },
        constraints={
            "any": ("Use formal definitions.", "Mention the mistakes people usually make."),
            "solve": ("Give a step-by-step proof.", "Do not use calculus.", "Generalize the result to n dimensions.",
                      "State every theorem you rely on.", "Give an exact answer, not a decimal.",
                      "Solve it two different ways and check they agree."),
            "explain": ("Include a worked example.", "Connect it to linear algebra.", "Derive it rather than state it."),
            "compare": ("Include a worked example of each.", "Say when each one breaks down."),
            "debug": ("Point to the exact step that is wrong.", "Explain why the mistake is so tempting."),
            "recommend": ("I only have two weeks.", "I prefer free resources.", "I already know calculus."),
        },
    ),
    "code": _Domain(
        templates={
            "write": (
                "Write a {lang} function to {program}.", "How do I {program} in {lang}?",
                "Can you give me {lang} code to {program}?", "I need a {lang} script to {program}.",
                "Implement a way to {program} in {lang}.",
            ),
            "debug": (
                "My {lang} code to {program} fails with {error}. How do I fix it?",
                "I'm getting {error} in a {lang} program that tries to {program}. What's wrong?",
                "Why would {lang} code give {error}?", "Help me debug {error} when I {program} in {lang}.",
            ),
            "explain": (
                "Can you explain how {concept} work in {lang}?", "What are {concept} and when should I use them?",
                "I keep hearing about {concept}. What are they?", "Explain {concept} with a {lang} example.",
            ),
            "compare": (
                "Should I use {lang} or {lang2} to {program}?", "Compare {concept} and {concept2}.",
                "What's the difference between {concept} and {concept2}?",
            ),
            "recommend": (
                "What's the best {lang} library to {program}?", "Which language would you recommend to {program}?",
                "Recommend a good way to learn {concept}.",
            ),
            "solve": (
                "Solve this coding puzzle in {lang}: {puzzle}.", "Interview practice: {puzzle}. Use {lang}.",
                "What is the most efficient algorithm to {puzzle_verb}?",
            ),
        },
        slots={
            "lang": ("Python", "JavaScript", "Rust", "Go", "Java", "C++", "TypeScript", "Bash", "Kotlin", "C#",
                     "Swift", "Haskell"),
            "program": (
                "parse a CSV file and compute column averages", "implement an LRU cache", "reverse a linked list",
                "debounce a function", "merge two sorted arrays", "validate an email address",
                "read a large file line by line", "serve a REST endpoint that returns JSON",
                "implement binary search", "find duplicate files in a directory", "rate-limit API calls",
                "serialize a tree to a string", "count word frequencies in a text", "build a thread-safe queue",
                "retry an HTTP request with exponential backoff", "flatten a nested list",
                "detect a cycle in a graph", "paginate database results", "watch a folder for changes",
            ),
            "concept": (
                "closures", "async functions", "generics", "weak references", "decorators", "pointers",
                "mutexes", "iterators", "lambdas", "traits", "coroutines", "smart pointers", "monads",
                "interfaces", "virtual functions", "macros",
            ),
            "error": (
                "a segmentation fault", "an off-by-one error", "a NoneType has no attribute error",
                "an infinite loop", "a race condition", "a stack overflow", "an undefined is not a function error",
                "a deadlock", "a null pointer exception", "a memory leak", "a borrow checker error",
                "a timeout on large inputs", "wrong output only on empty input", "an index out of range error",
            ),
            "puzzle": (
                "given an array, return the length of the longest increasing subsequence",
                "find two numbers in a list that add up to a target",
                "check whether a string is a palindrome ignoring punctuation",
                "count the islands in a grid of 0s and 1s", "return the k most frequent words",
                "find the shortest path through a maze", "compute the edit distance of two strings",
            ),
            "puzzle_verb": (
                "find the median of two sorted arrays", "detect a cycle in a linked list",
                "find all anagrams of a word in a dictionary", "schedule tasks with dependencies",
                "find the longest palindromic substring", "compute the maximum subarray sum",
            ),
        },
        constraints={
            "any": ("Add type hints and docstrings.", "Consider performance on very large inputs."),
            "write": ("It must run in O(n log n) time.", "Don't use any external libraries.", "Include unit tests.",
                      "Make it thread-safe.", "Handle malformed input gracefully.", "Keep memory usage constant."),
            "debug": ("It only happens in production.", "It only fails under heavy concurrency.",
                      "I can't change the public API.", "Explain the root cause, not just the fix."),
            "explain": ("Show what the compiler or runtime does under the hood.", "Cover the edge cases."),
            "compare": ("Include benchmarks.", "Consider maintainability for a large team."),
            "recommend": ("It has to be production-ready.", "The license must allow commercial use."),
            "solve": ("Prove the complexity bound.", "Do it in a single pass.", "Use O(1) extra space."),
        },
    ),
    "science": _Domain(
        templates={
            "explain": (
                "Explain {concept}.", "How does {concept} work?", "Can you explain {question}?",
                "I've always wondered {question}.", "What is {concept}, and why does it matter?",
            ),
            "solve": (
                "Physics homework: {problem}.", "Can you {problem}?", "Please {problem}.",
                "How would I {problem}?",
            ),
            "compare": (
                "What's the difference between {concept} and {concept2}?", "Compare {concept} and {concept2}.",
            ),
            "summarize": (
                "Summarize what scientists currently know about {concept}.",
                "Give me a summary of the key experiments behind {concept}.",
                "Can you summarize the history of research on {concept}?",
            ),
            "recommend": (
                "What experiment could a school class do to demonstrate {concept}?",
                "Which popular-science book would you recommend about {concept}?",
            ),
        },
        slots={
            "concept": (
                "photosynthesis", "quantum entanglement", "entropy", "natural selection", "plate tectonics",
                "the Doppler effect", "black holes", "chemical equilibrium", "DNA replication",
                "special relativity", "the greenhouse effect", "nuclear fusion", "electromagnetic induction",
                "osmosis", "the photoelectric effect", "superconductivity", "catalysis", "dark matter",
                "radioactive decay", "the Higgs boson", "CRISPR",
            ),
            "question": (
                "why the sky is blue", "why ice floats on water", "why metals conduct electricity",
                "how rainbows form", "why we have seasons", "what happens when a star runs out of fuel",
                "how airplanes stay in the air", "why the ocean is salty", "how magnets work",
            ),
            "problem": (
                "calculate the speed of a ball dropped from 20 m when it hits the ground",
                "find the wavelength of a 440 Hz sound wave in air", "compute the pH of a 0.01 M HCl solution",
                "find the force needed to accelerate a 1200 kg car at 3 m/s^2",
                "estimate the energy released when 1 g of mass becomes energy",
                "balance the equation for burning propane",
                "find the half-life if 25% of a sample remains after 10 years",
                "find the current through a 10 ohm resistor at 12 V",
                "find the orbital period of a satellite 400 km above Earth",
                "compute the heat needed to boil 2 kg of water starting at 20 C",
            ),
        },
        constraints={
            "any": ("Include the relevant equations and units.", "Discuss the experimental evidence."),
            "solve": ("Account for air resistance.", "Show the derivation from first principles.",
                      "Quantify the uncertainty in the answer."),
            "explain": ("Derive it from first principles.", "Use the quantum-mechanical picture."),
            "compare": ("Compare them quantitatively.",),
            "summarize": ("Cover the open questions.", "Include the latest results."),
            "recommend": ("It has to be safe for 12-year-olds.", "The budget is under $20."),
        },
    ),
    "medicine": _Domain(
        templates={
            "explain": (
                "What causes {condition}?", "Explain how {drug} works.", "What are the early signs of {condition}?",
                "How is {condition} diagnosed?", "Can {drug} interact with {drug2}?",
            ),
            "compare": (
                "What's the difference between {condition} and {condition2}?",
                "Compare {drug} and {drug2} in terms of side effects.",
            ),
            "summarize": (
                "Summarize the current treatment options for {condition}.",
                "Give me a short summary of the risks of long-term {drug} use.",
            ),
            "recommend": (
                "I have {symptom}. Should I see a doctor?", "What lifestyle changes help with {condition}?",
                "What questions should I ask my doctor about {drug}?",
                "My father was just diagnosed with {condition}. What should we watch for?",
            ),
            "solve": (
                "A patient weighs {weight} kg and needs {dose} mg/kg of {drug}. What is the total dose?",
                "If an adult of {weight} kg takes {dose} mg/kg of {drug} twice a day, how much is that per week?",
            ),
        },
        slots={
            "condition": (
                "type 2 diabetes", "hypertension", "migraine", "asthma", "iron-deficiency anemia",
                "hypothyroidism", "Lyme disease", "atrial fibrillation", "celiac disease", "rheumatoid arthritis",
                "kidney stones", "shingles", "sleep apnea", "acid reflux", "depression", "osteoporosis",
                "COPD", "gout",
            ),
            "drug": (
                "metformin", "ibuprofen", "statins", "beta blockers", "SSRIs", "amoxicillin",
                "levothyroxine", "warfarin", "insulin", "proton pump inhibitors", "prednisone", "ACE inhibitors",
            ),
            "symptom": (
                "a persistent dry cough", "chest tightness after exercise", "frequent morning headaches",
                "numbness in my fingers", "dizziness when I stand up", "a spreading rash",
                "stiff joints in the morning", "constant fatigue", "blurred vision", "heartburn after meals",
            ),
            "weight": ("54", "61", "72", "80", "88", "103"),
            "dose": ("0.5", "1", "2", "5", "10"),
        },
        constraints={
            "any": ("Consider a patient with kidney disease.", "Account for drug interactions.",
                    "Reference the current clinical guidelines.", "The patient is pregnant."),
            "explain": ("Describe the underlying pathophysiology.", "Discuss the differential diagnosis."),
            "compare": ("Cite the evidence from clinical trials.",),
            "summarize": ("Include the strength of the evidence.",),
            "recommend": ("I'm also on blood thinners.", "I'm 70 and have diabetes."),
            "solve": ("Adjust the dose for reduced kidney function.", "Give the answer in mL of a 50 mg/mL solution."),
        },
    ),
    "law": _Domain(
        templates={
            "explain": (
                "Explain {topic} in plain language.", "How does {topic} work?", "What are the basics of {topic}?",
            ),
            "compare": ("What's the difference between {topic} and {topic2}?",),
            "summarize": (
                "Summarize the key clauses I should look for in {doc}.", "Summarize my options: {situation}.",
            ),
            "write": (
                "Draft {doc} for a small business.", "Write a clause for {doc} that covers {topic}.",
                "Help me write a letter because {situation}.",
            ),
            "recommend": ("{situation_cap}. What should I do?", "What are my legal options? {situation_cap}."),
        },
        slots={
            "topic": (
                "tenant rights", "fair use", "non-compete agreements", "adverse possession",
                "at-will employment", "GDPR consent", "small claims court", "prenuptial agreements",
                "wrongful termination", "defamation", "breach of contract", "copyright for AI-generated art",
                "power of attorney", "trademark registration", "probate",
            ),
            "situation": (
                "my landlord kept my security deposit", "a client won't pay my invoice",
                "my employer changed my contract without notice", "a neighbor's tree fell on my car",
                "someone used my photo without permission", "I was fired after reporting a safety issue",
                "a company kept charging me after I cancelled", "my business partner wants out",
                "I received a cease and desist letter", "the airline refuses to compensate my cancelled flight",
            ),
            "doc": (
                "an NDA", "a freelance contract", "a lease agreement", "a privacy policy", "a will",
                "a terms-of-service clause", "a cease and desist letter", "a software license",
            ),
        },
        constraints={
            "any": ("Consider both US and EU law.", "Cite the relevant statutes.", "Address the exceptions.",
                    "The parties are in different countries."),
            "write": ("Make it enforceable in California.", "Assume the contract has an arbitration clause."),
            "recommend": ("There is no written contract.", "I have to respond by next week."),
        },
    ),
    "finance": _Domain(
        templates={
            "explain": ("Explain {concept}.", "How do {concept} work?", "What should everyone know about {concept}?"),
            "solve": ("Please {problem}.", "Can you {problem}?", "Quick finance exercise: {problem}."),
            "compare": ("Is it better to put money into {concept} or {concept2}?", "Compare {concept} and {concept2}."),
            "recommend": (
                "What's the smartest way to {goal}?", "How should I {goal} on a $50k salary?",
                "I'm 30 and want to {goal}. Where do I start?",
            ),
            "summarize": ("Summarize the pros and cons of {concept}.", "Give me a one-paragraph summary of {concept}."),
        },
        slots={
            "concept": (
                "index funds", "bonds", "Roth IRAs", "ETFs", "stock options", "dividend stocks",
                "high-yield savings accounts", "REITs", "target-date funds", "annuities", "treasury bills",
                "credit cards with rewards", "adjustable-rate mortgages", "municipal bonds",
            ),
            "problem": (
                "compute the future value of $5,000 at 6% compounded monthly for 10 years",
                "find the monthly payment on a $300,000 mortgage at 5% over 30 years",
                "calculate the annual return if $10,000 grows to $16,000 in 4 years",
                "work out how long it takes to double money at 7% a year",
                "compute the present value of $1,000 received in 5 years at 4%",
                "find the break-even volume with $20,000 fixed costs, $15 unit cost and a $40 price",
                "find the yield of a bond bought at $950 with a $50 annual coupon",
                "compute the real return of a 8% nominal gain with 3% inflation",
            ),
            "goal": (
                "save for a house in five years", "retire early", "pay off $20,000 of credit card debt",
                "invest my first $1,000", "build an emergency fund", "save for my kid's college",
            ),
        },
        constraints={
            "any": ("Account for taxes and inflation.", "Compare at least three scenarios."),
            "solve": ("Show the formula and each calculation.", "Assume interest rates change every year.",
                      "Include fees of 1% a year."),
            "recommend": ("I also have student loans.", "I'm self-employed with an irregular income."),
        },
    ),
    "history": _Domain(
        templates={
            "explain": (
                "What caused {event}?", "Why was {event} so important?", "What role did {figure} play in history?",
            ),
            "summarize": (
                "Summarize {event} in a few paragraphs.", "Give me a summary of {figure}'s life.",
                "Summarize the long-term consequences of {event}.",
            ),
            "compare": ("Compare {event} and {event2}.", "How was {figure} similar to {figure2}?"),
            "write": (
                "Write an essay on the legacy of {figure}.", "Write a short essay arguing that {event} was inevitable.",
            ),
            "recommend": ("What books would you recommend about {event}?", "Where should I start reading about {figure}?"),
        },
        slots={
            "event": (
                "the fall of the Roman Empire", "the French Revolution", "the Industrial Revolution", "the Cold War",
                "the Meiji Restoration", "the Black Death", "the invention of the printing press", "the Silk Road",
                "the partition of India", "the American Civil War", "the Renaissance",
                "the collapse of the Soviet Union", "the Cuban Missile Crisis", "the Treaty of Versailles",
                "the Mongol conquests", "the Apollo program", "the Reformation",
            ),
            "figure": (
                "Napoleon", "Cleopatra", "Genghis Khan", "Abraham Lincoln", "Elizabeth I", "Simon Bolivar",
                "Catherine the Great", "Mansa Musa", "Winston Churchill", "Ashoka", "Joan of Arc",
                "Nelson Mandela",
            ),
        },
        constraints={
            "any": ("Use primary sources.", "Discuss the historiographical debate.",
                    "Cover economic, social and political causes.", "Contrast at least two interpretations."),
            "write": ("Write at least 1,500 words.", "Use Chicago-style citations."),
        },
    ),
    "creative_writing": _Domain(
        templates={
            "write": (
                "Write {form} about {theme}.", "Can you write {form} about {theme} in the style of {style}?",
                "Compose {form} about {theme}.", "I need {form} about {theme} for a class.",
            ),
            "debug": (
                "Here's my draft of {form} about {theme}. How can I make it stronger?",
                "My {form_noun} about {theme} feels flat. What's wrong with it?",
            ),
            "summarize": (
                "Give me a one-paragraph synopsis for a novel about {theme}.",
                "Summarize a plot about {theme} in three sentences.",
            ),
            "recommend": (
                "Give me five ideas for {form} about {theme}.", "Suggest a title for {form} about {theme}.",
                "What are good writing prompts about {theme}?",
            ),
        },
        slots={
            "form": (
                "a short story", "a poem", "a haiku", "a limerick", "a song chorus", "a flash fiction piece",
                "a sonnet", "an opening paragraph for a novel", "a fairy tale", "a monologue",
            ),
            "form_noun": ("short story", "poem", "haiku", "limerick", "song", "screenplay scene", "sonnet"),
            "theme": (
                "a lighthouse keeper who finds a message in a bottle", "first love in a small town",
                "a robot learning to paint", "the last day of summer", "a dragon afraid of heights",
                "a detective in a city that never sleeps", "losing a grandparent", "a cat who rules an apartment",
                "time travel gone wrong", "a storm at sea", "moving to a new country",
                "an old friendship rekindled",
            ),
            "style": ("Edgar Allan Poe", "Dr. Seuss", "a noir novel", "Shakespeare", "a picture book",
                      "Hemingway", "a fantasy epic"),
        },
        constraints={
            "any": ("It should work for young readers.", "The tone should stay bittersweet."),
            "write": ("Keep it under 100 words.", "Write it in iambic pentameter.", "Make every line rhyme.",
                      "Use an unreliable narrator.", "Tell it in the second person.", "End with a twist."),
            "debug": ("Focus on pacing and voice.", "Be brutally honest."),
            "summarize": ("Use an unreliable narrator.", "End with a twist.", "Never name the main character."),
            "recommend": ("Avoid every cliche of the genre.", "Make them work as a series."),
        },
    ),
    "translation": _Domain(
        templates={
            "translate": (
                'Translate into {lang}: "{sentence}"', 'How do you say "{sentence}" in {lang}?',
                'Can you translate "{sentence}" to {lang}?', "Please render this in {lang}: {sentence}",
            ),
            "explain": ("How does {grammar} work in {lang}?", "Explain {grammar} in {lang} with examples."),
            "compare": (
                "Is {lang} or {lang2} easier for an English speaker to learn?",
                "How does {grammar} differ between {lang} and {lang2}?",
            ),
            "debug": (
                'I translated "{sentence}" into {lang} myself. Can you check it for mistakes?',
                'Is my {lang} translation of "{sentence}" natural?',
            ),
        },
        slots={
            "lang": ("French", "Spanish", "German", "Japanese", "Mandarin", "Portuguese", "Italian", "Korean",
                     "Arabic", "Russian", "Hindi", "Dutch", "Turkish", "Swahili"),
            "sentence": (
                "Where is the nearest train station?", "I would like to book a table for two at eight.",
                "The meeting has been moved to Thursday afternoon.", "Could you send me the invoice again?",
                "My grandmother taught me how to bake bread.", "The weather is lovely today, isn't it?",
                "I'm allergic to peanuts.", "We regret to inform you that your application was unsuccessful.",
                "Happy birthday! I hope all your wishes come true.", "Keep this medicine in a cool, dry place.",
                "The early bird catches the worm.", "I've been learning this language for two years.",
            ),
            "grammar": ("the subjunctive", "formal and informal 'you'", "the past tense", "grammatical gender",
                        "honorifics", "word order in questions", "counter words", "verb aspect"),
        },
        constraints={
            "any": ("Keep the formal register.", "Give a version for each major regional variety."),
            "translate": ("Preserve the idiom's meaning, not its words.", "Explain each grammatical choice.",
                          "Give the romanization as well."),
            "explain": ("Cover the exceptions.", "Compare it with how English does it."),
            "debug": ("Explain each correction.",),
        },
    ),
    "chit_chat": _Domain(
        templates={
            "converse": (
                "Hey! How's your day going?", "Let's chat about {topic}.", "What do you think about {topic}?",
                "I'm bored. Tell me something fun about {topic}.", "Do you have any opinions on {topic}?",
                "I just wanted to tell someone about {topic}.", "Tell me a joke about {topic}.",
            ),
            "recommend": (
                "What should I do on {activity}?", "Any ideas for {activity}?", "Recommend a movie for {activity}.",
                "Suggest some snacks for {activity}.",
            ),
            "write": (
                "Help me write a text to a friend about {topic}.", "Write a funny birthday message for my coworker.",
                "Write a short message telling my friends my plans for {activity}.",
            ),
            "explain": ("Why do people love {topic} so much?", "Why is {topic} such a big deal for some people?"),
        },
        slots={
            "topic": ("my weekend", "rainy days", "pineapple on pizza", "my new puppy", "learning to cook",
                      "morning routines", "favorite movies", "road trips", "coffee versus tea", "board games",
                      "gardening", "my job interview tomorrow", "karaoke", "houseplants"),
            "activity": ("a rainy Sunday", "a first date", "a long flight", "a birthday party for a ten-year-old",
                         "a night in with friends", "a solo trip to the mountains", "a lazy afternoon",
                         "a team-building event"),
        },
        constraints={
            "any": ("Make it funny but not mean.", "Keep it under 50 words.", "Include a pun.",
                    "Make it suitable for kids."),
            "recommend": ("I'm on a tight budget.", "I'm vegetarian."),
        },
    ),
}

# Difficulty cues: a noisy copy of the latent difficulty picks them, so the text is a hint.
_EASY_PREFIX = ("Quick question: ", "Simple question: ", "Beginner here. ", "ELI5: ", "Just curious: ",
                "Super basic question: ")
_EASY_SUFFIX = (" Keep it brief.", " Just a short answer, please.", " Explain it like I'm five.",
                " In simple terms, please.", " I'm a total beginner.", " One sentence is enough.",
                " Nothing fancy, just the basics.")
_HARD_PREFIX = ("Advanced question: ", "Expert-level: ", "This is a tricky one. ", "Detailed answer needed: ",
                "Hard one: ")
_HARD_SUFFIX = (" Please be thorough.", " Go into real depth.", " Take it step by step.",
                " Don't skip any details.", " Cover the edge cases.")
_FILLER = (" Thanks!", " Thanks in advance.", " Please help.", "", "", "", "", "")

_VISIBLE_NOISE = 0.7    # std of the noise between latent difficulty and the cues the text shows
_CUE_THRESHOLD = 0.7    # |visible| beyond this adds easy / hard cues
_DIFFICULTY_MEAN = 0.3


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _fill(template: str, slots: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    values: dict[str, str] = {}
    for f in _fields(template):
        if f in values:
            continue
        base = f[:-4] if f.endswith("_cap") else f[:-1] if f.endswith("2") and f[:-1] in slots else f
        pool = slots[base]
        if f == base + "2":
            first = values.get(base) or values.setdefault(base, pool[int(rng.integers(len(pool)))])
            others = [v for v in pool if v != first]
            values[f] = others[int(rng.integers(len(others)))]
            continue
        v = values.get(base) or values.setdefault(base, pool[int(rng.integers(len(pool)))])
        values[f] = v[:1].upper() + v[1:] if f.endswith("_cap") else v
    return template.format(**values)


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _write_query(domain: str, task: str, difficulty: float, rng: np.random.Generator) -> str:
    spec = _TEXT[domain]
    body = _fill(_pick(spec.templates[task], rng), spec.slots, rng)
    constraints = spec.constraints.get(task, ()) + spec.constraints.get("any", ())
    visible = difficulty + _VISIBLE_NOISE * rng.standard_normal()
    prefix, suffix = "", ""
    if visible < -_CUE_THRESHOLD and rng.random() < 0.85:
        style = rng.integers(3)  # prefix, suffix or both
        prefix = _pick(_EASY_PREFIX, rng) if style != 1 else ""
        suffix = _pick(_EASY_SUFFIX, rng) if style != 0 else ""
    elif visible > _CUE_THRESHOLD and rng.random() < 0.85:
        style = rng.integers(3)
        prefix = _pick(_HARD_PREFIX, rng) if style != 1 else ""
        suffix = _pick(_HARD_SUFFIX, rng) if style != 0 else ""
        n_extra = 1 + int(visible > 1.4) + int(visible > 2.1)
        picks = rng.choice(len(constraints), size=min(n_extra, len(constraints)), replace=False)
        suffix += "".join(" " + constraints[i] for i in picks)
    elif rng.random() < 0.15:  # an occasional constraint on a middling query, so cues are not clean
        suffix = " " + _pick(constraints, rng)
    return prefix + body + suffix + _pick(_FILLER, rng)


def _length_factor(query: str) -> float:
    """Longer asks cost more to answer: about 1 at 15 words, 2 at 45."""
    return 0.5 + len(query.split()) / 30.0


# --------------------------------------------------------------------------- generation
def _split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(split.encode("utf-8"))])


def _make_split(split: str, n: int, domains: list[str], seed: int, noise: float) -> list[RoutingRecord]:
    rng = _split_rng(seed, split)
    pool = _pool()
    dom_idx = rng.integers(len(domains), size=n)
    domain_names = [domains[i] for i in dom_idx]
    tasks = [_pick(tuple(_TEXT[d].templates), rng) for d in domain_names]
    difficulty = _DIFFICULTY_MEAN + rng.standard_normal(n)
    queries = [_write_query(d, t, float(z), rng) for d, t, z in zip(domain_names, tasks, difficulty)]

    d_col = np.array([DOMAINS.index(d) for d in domain_names], dtype=int)
    t_col = np.array([TASK_TYPES.index(t) for t in tasks], dtype=int)
    logits = (pool.domain_skill[:, d_col].T + pool.task_skill[:, t_col].T
              - difficulty[:, None] * pool.sensitivity[None, :]
              + noise * rng.standard_normal((n, len(LLMS))))
    quality = 1.0 / (1.0 + np.exp(-logits))
    attempts = rng.binomial(N_ATTEMPTS, quality) / N_ATTEMPTS
    correct = rng.random((n, len(LLMS))) < quality
    # The probability a correct answer puts on the right choice: above chance (1/4) and
    # higher the surer the LLM is, as RouterDC's multiple-choice probabilities look.
    confidence = 0.25 + 0.75 / (1.0 + np.exp(-(logits + 0.5 * rng.standard_normal((n, len(LLMS))))))
    probability = np.where(correct, np.round(np.maximum(confidence, 0.2501), 4), 0.0)

    records = []
    for i, (domain, query) in enumerate(zip(domain_names, queries)):
        score_type = SCORE_TYPE[domain]
        row = attempts[i] if score_type == "multi_attempt" else probability[i]
        factor = _length_factor(query)
        records.append(RoutingRecord(
            id=stable_id("synthetic", seed, split, i),
            query=query,
            task=domain,
            scores={name: float(s) for name, s in zip(LLM_NAMES, row)},
            costs={name: round(float(c) * factor, 6) for name, c in zip(LLM_NAMES, pool.cost)},
            label=None,
            cluster_id=None,
            score_type=score_type,
        ))
    return records


def make_synthetic_benchmark(n_train: int = 3000, n_val: int = 500, n_test: int = 1500, seed: int = 0,
                             ood_domains=("law", "translation"), noise: float = 0.5) -> dict[str, list[RoutingRecord]]:
    """Sample the benchmark: ``train``, ``val``, one ``test_<domain>`` per in-distribution
    domain and one ``ood_<domain>`` per held-out domain (never in train/val); ``n_test`` is
    split evenly over the test sets. Same seed, same records; the pool never changes."""
    ood = tuple(ood_domains or ())
    unknown = [d for d in ood if d not in DOMAINS]
    if unknown:
        raise DataError(f"synthetic benchmark: ood_domains {unknown} are unknown; expected some of {list(DOMAINS)}")
    in_dist = [d for d in DOMAINS if d not in ood]
    if not in_dist:
        raise DataError("synthetic benchmark: ood_domains holds out every domain; keep at least one for training")
    if noise < 0:
        raise DataError(f"synthetic benchmark: noise is {noise}; expected a number >= 0")
    if seed < 0 or min(n_train, n_val) < 0:
        raise DataError(f"synthetic benchmark: seed={seed}, n_train={n_train}, n_val={n_val}; expected each >= 0")
    test_sets = [(f"test_{d}", d) for d in in_dist] + [(f"ood_{d}", d) for d in ood]
    if n_test < len(test_sets):
        raise DataError(f"synthetic benchmark: n_test={n_test} is below the number of test sets ({len(test_sets)})")

    splits = {
        "train": _make_split("train", int(n_train), in_dist, seed, noise),
        "val": _make_split("val", int(n_val), in_dist, seed, noise),
    }
    base, extra = divmod(int(n_test), len(test_sets))
    for k, (name, domain) in enumerate(test_sets):
        splits[name] = _make_split(name, base + (k < extra), [domain], seed, noise)
    return splits


_cached_benchmark = lru_cache(maxsize=8)(make_synthetic_benchmark)


def load_synthetic(split: str = "train", n_train: int = 3000, n_val: int = 500, n_test: int = 1500, seed: int = 0,
                   ood_domains=("law", "translation"), noise: float = 0.5) -> list[RoutingRecord]:
    """The benchmark's ``split``: train, val, test (every test set, in- and
    out-of-distribution) or one named test set such as ``test_math`` / ``ood_law``."""
    splits = _cached_benchmark(int(n_train), int(n_val), int(n_test), int(seed), tuple(ood_domains), float(noise))
    if split == "test":
        return [r for name, recs in splits.items() if name not in ("train", "val") for r in recs]
    if split not in splits:
        raise DataError(f"synthetic benchmark has no split {split!r}; expected train, val, test or one of {sorted(splits)}")
    return list(splits[split])


# --------------------------------------------------------------------------- description
def effective_scores(records: list[RoutingRecord], llm_names=LLM_NAMES) -> np.ndarray:
    """(n_records, n_llms) success per answer (``metrics.effective_scores``): the score for
    multi_attempt, 1 if the score is > 0 (the answer was right) for probability."""
    from router_lab.metrics import effective_scores as effective

    scores = np.array([[r.scores[n] for n in llm_names] for r in records], dtype=float).reshape(len(records), -1)
    return effective(scores, [r.score_type for r in records])


def describe_benchmark(splits: dict[str, list[RoutingRecord]]) -> dict:
    """Per split: the best single LLM (highest mean effective score on ``train``) and its
    score; ``per_task_best``, the score when each task goes to its best LLM on that split (a
    router that sees only the task can do no better); ``oracle``, the best LLM per query;
    and ``gap`` = oracle - best single."""
    best_idx = int(np.argmax(effective_scores(splits["train"]).mean(axis=0)))
    out = {}
    for name, records in splits.items():
        if not records:
            out[name] = {"n": 0, "best_single_llm": LLM_NAMES[best_idx], "best_single": float("nan"),
                         "per_task_best": float("nan"), "oracle": float("nan"), "gap": float("nan")}
            continue
        eff = effective_scores(records)
        tasks = np.array([r.task for r in records])
        per_task = sum(eff[tasks == t].sum(axis=0).max() for t in np.unique(tasks)) / len(records)
        best_single = float(eff[:, best_idx].mean())
        oracle = float(eff.max(axis=1).mean())
        out[name] = {
            "n": len(records),
            "best_single_llm": LLM_NAMES[best_idx],
            "best_single": best_single,
            "per_task_best": float(per_task),
            "oracle": oracle,
            "gap": oracle - best_single,
        }
    return out
